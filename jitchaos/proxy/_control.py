"""The control API (its own listener, behind a bearer secret) and its Python client.

Every request without the secret gets 401 and changes nothing. Errors are RFC 9457 problem
details. ``GET /`` lists the routes (from :data:`ROUTES`)::

    GET  /status           step, clock, pending schedule entries, listeners
    GET  /schedule         the loaded schedule and what has not fired yet
    PUT  /schedule         load a schedule (a JSON list of {trigger, fault})
    POST /faults           apply one fault now ({"kind": ..., fields})
    POST /step             the driver took a step
    POST /clock            {"advance": SECONDS} or {"set": TIME}
    GET  /history          decisions and applied faults (?since=SEQ)
    GET  /audit            the ledger's events and open grants
    POST /reset            forget schedule, effects and history
    GET  /metrics          counters in Prometheus text format
"""

from __future__ import annotations

import hmac
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from yarl import URL

from jitchaos._audit import encode_event
from jitchaos._checks import finite_number
from jitchaos._schedule import Schedule, fault_from_json, fault_to_json
from jitchaos._wire import UNREADABLE_BODY, unreadable_body
from jitchaos._wire import problem as _problem
from jitchaos.errors import ControlError, InvalidArgument
from jitchaos.faults import FAULTS, AnyFault
from jitchaos.proxy._metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from jitchaos.proxy._proxy import ChaosProxy

__all__ = ["ProxyClient", "control_app"]

_PROXY = web.AppKey("proxy", object)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_app(proxy: ChaosProxy) -> web.Application:
    """The control API's aiohttp application for ``proxy``."""
    expected = f"Bearer {proxy.secret}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _problem(
                401,
                "the control API needs 'Authorization: Bearer SECRET' (the proxy's secret)",
                **{"WWW-Authenticate": 'Bearer realm="jitchaos-control"'},
            )
        try:
            return await handler(request)
        except InvalidArgument as error:
            return _problem(400, str(error))
        except UNREADABLE_BODY as error:  # a body the client garbled
            return _problem(400, unreadable_body(error))
        except web.HTTPException as error:
            if error.status >= 400:
                allow = error.headers.get("Allow")  # a 405 says what the path answers
                return _problem(error.status, error.reason, **({"Allow": allow} if allow else {}))
            raise

    app = web.Application(middlewares=[guard], client_max_size=4 * 1024 * 1024)
    app[_PROXY] = proxy
    routes = _Routes(proxy)
    for method, path, name, _ in ROUTES:
        app.router.add_route(method, path, getattr(routes, name))

    async def index(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "control": "jitchaos proxy control API",
                "authorization": "Bearer SECRET on every request (the proxy's secret: "
                "$JITCHAOS_CONTROL_SECRET, or the one it printed; 16 or more printable "
                "ASCII characters)",
                "routes": [
                    {"method": method, "path": path, "does": does}
                    for method, path, _, does in ROUTES
                ],
            }
        )

    app.router.add_get("/", index)
    return app


ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", "/status", "status", "step, clock, pending schedule entries, listeners"),
    ("GET", "/schedule", "get_schedule", "the loaded schedule and what has not fired yet"),
    ("PUT", "/schedule", "put_schedule", "load a schedule (a JSON list of {trigger, fault})"),
    ("POST", "/faults", "fault", 'apply one fault now ({"kind": ..., fields})'),
    ("POST", "/step", "step", "the driver took a step"),
    ("POST", "/clock", "clock", '{"advance": SECONDS} or {"set": TIME}'),
    ("GET", "/history", "history", "decisions and applied faults (?since=SEQ)"),
    ("GET", "/audit", "audit", "the ledger's events and open grants"),
    ("POST", "/reset", "reset", "forget schedule, effects and history"),
    ("GET", "/metrics", "metrics", "counters in Prometheus text format"),
)
"""(method, path, handler, what it does): the routes and the index GET / lists."""


class _Routes:
    def __init__(self, proxy: ChaosProxy) -> None:
        self.proxy = proxy

    async def status(self, request: web.Request) -> web.Response:
        proxy = self.proxy
        return web.json_response(
            {
                "step": proxy.engine.step,
                "now": proxy.clock.now(),
                "pending": len(proxy.engine.pending),
                "idp": proxy.url,
                "services": {name: proxy.service_url(name) for name in proxy.services},
                "resign": proxy.resign,
            }
        )

    async def get_schedule(self, request: web.Request) -> web.Response:
        engine = self.proxy.engine
        return web.json_response(
            {
                "schedule": engine.schedule.to_json(),
                "pending": Schedule(engine.pending).to_json(),
            }
        )

    async def put_schedule(self, request: web.Request) -> web.Response:
        schedule = Schedule.from_json(await _json(request))
        self.proxy.load(schedule)
        return web.json_response({"loaded": len(schedule)})

    async def fault(self, request: web.Request) -> web.Response:
        applied = self.proxy.apply(fault_from_json(await _json(request)))
        return web.json_response(applied.to_json())

    async def step(self, request: web.Request) -> web.Response:
        fired = self.proxy.step()
        return web.json_response(
            {"step": self.proxy.engine.step, "fired": [f.to_json() for f in fired]}
        )

    async def clock(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict) or len(body) != 1 or not {"advance", "set"} & set(body):
            raise InvalidArgument('the body must be {"advance": SECONDS} or {"set": TIME}')
        clock = self.proxy.clock
        if not hasattr(clock, "advance"):
            return _problem(409, f"the proxy's clock {clock!r} cannot be moved")
        if "advance" in body:
            now = self.proxy.advance(body["advance"])
        else:
            now = clock.set(body["set"])  # type: ignore[attr-defined]
            self.proxy.engine.tick()
        return web.json_response({"now": now})

    async def history(self, request: web.Request) -> web.Response:
        raw = request.query.get("since", "0")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise InvalidArgument(f"since={raw!r} must be a whole number (a history seq)")
        since = int(raw)
        entries = [e.to_json() for e in self.proxy.history.entries if e.seq > since]
        return web.json_response({"entries": entries})

    async def audit(self, request: web.Request) -> web.Response:
        ledger = self.proxy.ledger
        now = self.proxy.clock.now()
        return web.json_response(
            {
                "events": [encode_event(event) for event in ledger.events],
                "open_grants": [
                    {
                        "grant_id": g.grant_id,
                        "principal": str(g.principal),
                        "client_id": g.client_id,
                        "scopes": sorted(g.scopes),
                    }
                    for g in ledger.open_grants(now)
                ],
            }
        )

    async def reset(self, request: web.Request) -> web.Response:
        self.proxy.reset()
        return web.json_response({})

    async def metrics(self, request: web.Request) -> web.Response:
        body = self.proxy.metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE
        return response


async def _json(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument(f"the body is not JSON: {error}") from None
    except RecursionError:
        raise InvalidArgument("the body nests arrays or objects too deeply") from None


class ProxyClient:
    """A small synchronous client for a chaos proxy's control API.

    ``url`` is the control listener's base URL, ``secret`` the bearer secret the proxy printed.
    Refusals raise :class:`~jitchaos.errors.ControlError` carrying the problem's detail.
    """

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"url={url!r} must be the control API's http(s) base URL")
        try:
            URL(url)
        except ValueError as error:
            raise InvalidArgument(f"url={url!r} is not a URL: {error}") from None
        if (
            not isinstance(secret, str)
            or not secret
            or not secret.isascii()
            or not secret.isprintable()
        ):
            raise InvalidArgument("secret must be the proxy's control secret (printable ASCII)")
        timeout = finite_number("timeout", timeout, minimum=0)
        if timeout == 0:
            raise InvalidArgument("timeout=0 must be seconds > 0")
        self.url = url.rstrip("/")
        self._secret = secret
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ProxyClient({self.url!r}, secret=...)"

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def load(self, schedule: Schedule) -> int:
        """Load ``schedule``; returns how many entries it has."""
        if not isinstance(schedule, Schedule):
            raise InvalidArgument(f"schedule={schedule!r} must be a Schedule")
        return int(self._call("PUT", "/schedule", schedule.to_json())["loaded"])

    def schedule(self) -> dict[str, Any]:
        return self._call("GET", "/schedule")

    def apply(self, fault: AnyFault) -> dict[str, Any]:
        """Apply ``fault`` now; returns the history entry recording it."""
        if not isinstance(fault, tuple(FAULTS.values())):
            raise InvalidArgument(f"fault={fault!r} must be a fault value (jitchaos.faults)")
        return self._call("POST", "/faults", fault_to_json(fault))

    def step(self) -> dict[str, Any]:
        return self._call("POST", "/step", {})

    def advance(self, seconds: float) -> float:
        return float(self._call("POST", "/clock", {"advance": seconds})["now"])

    def set_time(self, when: float) -> float:
        return float(self._call("POST", "/clock", {"set": when})["now"])

    def history(self, *, since: int = 0) -> list[dict[str, Any]]:
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidArgument(f"since={since!r} must be a history position (an int >= 0)")
        entries: list[dict[str, Any]] = self._call("GET", f"/history?since={since}")["entries"]
        return entries

    def audit(self) -> dict[str, Any]:
        return self._call("GET", "/audit")

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def metrics(self) -> str:
        return self._send("GET", "/metrics", None).decode()

    def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        answer = self._send(method, path, body)
        try:
            data = json.loads(answer)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise ControlError(f"control API {method} {path}: the answer is not a JSON object")
        return data

    def _send(self, method: str, path: str, body: object) -> bytes:
        payload = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL was checked to be http(s)
            self.url + path,
            data=payload,
            method=method,
            headers={
                "Authorization": f"Bearer {self._secret}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read()).get("detail", error.reason)
            except (ValueError, AttributeError):
                detail = error.reason
            raise ControlError(
                f"control API {method} {path}: {error.code} {detail}", status=error.code
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise ControlError(f"control API at {self.url} unreachable: {error}") from None
        except http.client.HTTPException as error:  # not an HTTP server at all
            raise ControlError(
                f"control API at {self.url} answered something that is not HTTP: "
                f"{type(error).__name__}"
            ) from None
