"""The chaos proxy: services reach their IdP through it, and tests reach the services through it.

This module sets it up and drives it; each side lives in its own: the IdP side
(``_idp_side.py``), the service side (``_service_side.py``), the world faults act on
(``_world.py``), the HTTP helpers both sides share (``_http.py``), the control API
(``_control.py``). The proxy never contacts a target it was not configured with, and never
draws random numbers.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager

from aiohttp import web
from yarl import URL

from jitchaos._audit import AuditLog
from jitchaos._clock import Clock, SystemClock
from jitchaos._history import AppliedFault, History
from jitchaos._keys import KeyRing
from jitchaos._ledger import Ledger
from jitchaos._loop import BackgroundLoop
from jitchaos._records import AuditSink
from jitchaos._schedule import Schedule
from jitchaos._wire import quiet_client_mistakes
from jitchaos.errors import InvalidArgument
from jitchaos.faults import FAULTS, AnyFault
from jitchaos.idp import EmbeddedIdP, IdPConfig
from jitchaos.proxy._engine import FaultEngine
from jitchaos.proxy._framing import GuardedAppRunner
from jitchaos.proxy._http import base_url, service_target
from jitchaos.proxy._idp_side import IdPSide
from jitchaos.proxy._metrics import Metrics
from jitchaos.proxy._server import LeanServer
from jitchaos.proxy._service_side import ServiceSide
from jitchaos.proxy._upstream import ForeignEndpoint, UpstreamIdP
from jitchaos.proxy._world import ProxyWorld

__all__ = ["ChaosProxy"]

_SERVICE_NAME = "default"


def _origin(text: object) -> URL:
    """An ``allow_origins`` entry (``scheme://host[:port]``) as an origin."""
    url = URL(text) if isinstance(text, str) else None
    if (
        url is None
        or url.scheme not in ("http", "https")
        or not url.host
        or url.path not in ("", "/")
        or url.query_string
    ):
        raise InvalidArgument(f"allowed origin {text!r} must be scheme://host[:port]")
    return url.origin()


class ChaosProxy:
    """A deterministic chaos proxy between services and their IdP, and in front of services.

    ``upstream`` is a running :class:`~jitchaos.idp.EmbeddedIdP` (the proxy then holds its
    signing keys), an :class:`~jitchaos.idp.IdPConfig` (the proxy starts an embedded IdP whose
    issuer is the proxy itself), or the URL of a real OpenID provider (its issuer or discovery
    URL). ``resign`` makes the proxy verify upstream JWTs and re-mint them with its own keys.
    ``services`` maps names to the base URLs of the services under test. ``clock`` defaults to
    the embedded IdP's clock, else the wall clock. ``secret`` guards the control API (one is
    generated when not given). ``ca_bundle`` names CA certificates for https upstreams.
    ``upstream_timeout`` is how long the upstream IdP or a service may stay silent before the
    proxy answers 504 (a long download that keeps coming is no timeout). ``hold_limit`` caps,
    in real seconds, how long a fault may hold a request (an outage in timeout mode answers
    504 after it). ``reuse_detection`` says the upstream revokes a whole
    grant when a spent refresh token is presented again (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2;
    the embedded IdP does): when it refuses such a reuse, the ledger records that revocation.
    ``horizon`` (seconds, with an ``audit`` log) bounds memory for long runs: a grant closed
    that long ago, and decisions and faults that old, leave memory (:meth:`forget`, run every
    so often while serving); the audit log keeps them for ``jitchaos audit``.
    """

    def __init__(
        self,
        upstream: EmbeddedIdP | IdPConfig | str,
        *,
        services: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        resign: bool = False,
        secret: str | None = None,
        schedule: Schedule | None = None,
        audit: str | os.PathLike[str] | AuditSink | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        upstream_timeout: float = 10.0,
        hold_limit: float = 10.0,
        reuse_detection: bool = True,
        allow_origins: Collection[str] = (),
        horizon: float | None = None,
    ) -> None:
        self._own_idp: EmbeddedIdP | None = None
        self._idp_config: IdPConfig | None = None
        self.idp: EmbeddedIdP | None = None
        if isinstance(upstream, EmbeddedIdP):
            self.idp = upstream
            self._upstream_url: str | None = upstream.url
        elif isinstance(upstream, IdPConfig):
            self._idp_config = upstream
            self._upstream_url = None
        elif isinstance(upstream, str):
            self._upstream_url = upstream
            try:
                UpstreamIdP(upstream)
            except ValueError as error:
                raise InvalidArgument(str(error)) from None
        else:
            raise InvalidArgument(
                f"upstream={upstream!r} must be an EmbeddedIdP, an IdPConfig or an http(s) URL"
            )
        if isinstance(allow_origins, str) or not isinstance(allow_origins, Collection):
            raise InvalidArgument(f"allow_origins={allow_origins!r} must be a list of origins")
        self._allowed_origins = frozenset(_origin(text) for text in allow_origins)
        self.services: dict[str, URL] = {}
        if services is not None and not isinstance(services, Mapping):
            raise InvalidArgument(f"services={services!r} must map names to http(s) URLs")
        for name, url in (services or {}).items():
            parsed = service_target(url)
            if not isinstance(name, str) or not name.isidentifier() or parsed is None:
                raise InvalidArgument(
                    f"services: {name!r}={url!r} must map a name (letters, digits, _) to an "
                    "http(s) URL with a host and no query or fragment"
                )
            self.services[name] = parsed
        if isinstance(upstream_timeout, bool) or not (
            isinstance(upstream_timeout, int | float) and 0 < upstream_timeout < float("inf")
        ):
            raise InvalidArgument(f"upstream_timeout={upstream_timeout!r} must be seconds > 0")
        if isinstance(hold_limit, bool) or not (
            isinstance(hold_limit, int | float) and 0 <= hold_limit < float("inf")
        ):
            raise InvalidArgument(f"hold_limit={hold_limit!r} must be seconds >= 0")
        if secret is not None and (
            not isinstance(secret, str)
            or len(secret) < 16
            or not (secret.isascii() and secret.isprintable())
        ):
            # In an Authorization header: printable ASCII, as ProxyClient can send it.
            raise InvalidArgument(
                "secret must be a string of at least 16 printable ASCII characters"
            )
        self.secret = secret if secret is not None else secrets.token_urlsafe(24)
        if clock is None:
            clock = self.idp.clock if self.idp is not None else SystemClock()
        self.clock: Clock = clock
        self.resign = bool(resign)
        self._own_keys = KeyRing() if self.resign else None
        sink = AuditLog(audit) if isinstance(audit, str | os.PathLike) else audit
        if horizon is not None:
            if isinstance(horizon, bool) or not (
                isinstance(horizon, int | float) and 0 < horizon < float("inf")
            ):
                raise InvalidArgument(f"horizon={horizon!r} must be seconds > 0")
            if not isinstance(sink, AuditLog):
                raise InvalidArgument(
                    "horizon lets closed grants leave memory: their record must stay in an "
                    "audit log (give audit=PATH)"
                )
        self.horizon = float(horizon) if horizon is not None else None
        self._sweeper: asyncio.Task[None] | None = None
        self.ledger = Ledger(self.clock, audit=sink)
        self.history = History(on_fault=self._audit_fault)
        self.metrics = Metrics()
        self.world = ProxyWorld(
            self.clock, self.ledger, keys=lambda: self.keys, hold_limit=float(hold_limit)
        )
        self.engine = FaultEngine(self.world, self.clock, self.history, on_fired=self._count_fault)
        if schedule is not None:
            self.engine.load(schedule)
        self._ca_context: ssl.SSLContext | None = None
        if ca_bundle is not None:
            if not isinstance(ca_bundle, str | os.PathLike):
                raise InvalidArgument(
                    f"ca_bundle={ca_bundle!r} must be a path to PEM CA certificates"
                )
            try:
                self._ca_context = ssl.create_default_context(cafile=os.fspath(ca_bundle))
            except (OSError, ssl.SSLError) as error:
                raise InvalidArgument(f"ca_bundle={os.fspath(ca_bundle)!r}: {error}") from None
        self.idp_side = IdPSide(
            self.world,
            self.engine,
            self.metrics,
            own_keys=self._own_keys,
            embedded=lambda: self.idp,
            reuse_detection=bool(reuse_detection),
            upstream_timeout=float(upstream_timeout),
        )
        self.service_side = ServiceSide(
            self.services,
            ledger=self.ledger,
            engine=self.engine,
            history=self.history,
            metrics=self.metrics,
            holder=lambda: self.holder,
            upstream_timeout=float(upstream_timeout),
        )
        self._runners: list[web.BaseRunner] = []
        self._idp_server: LeanServer | None = None
        self._urls: dict[str, str] = {}
        self._loop: BackgroundLoop | None = None
        self.holder: str | None = None
        """Who is driving the traffic now (a test id); recorded with every decision."""

    # Where it is.

    @property
    def url(self) -> str:
        """Base URL of the IdP side (what services use as their IdP)."""
        return self._where("idp")

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def upstream_url(self) -> str | None:
        """The upstream IdP's URL (for an embedded IdP the proxy starts: once started)."""
        return self._upstream_url

    @property
    def control_url(self) -> str:
        """Base URL of the control API."""
        return self._where("control")

    def service_url(self, name: str = _SERVICE_NAME) -> str:
        """Base URL at which the proxy fronts service ``name``."""
        if name not in self.services:
            raise InvalidArgument(f"name={name!r} is not a configured service")
        return self._where(f"service:{name}")

    @property
    def keys(self) -> KeyRing | None:
        """The keys tokens are (re-)signed with, or None when the proxy holds none."""
        if self._own_keys is not None:
            return self._own_keys
        return self.idp.keys if self.idp is not None else None

    def _where(self, listener: str) -> str:
        if listener not in self._urls:
            raise RuntimeError("the proxy is not being served: call start() first")
        return self._urls[listener]

    # Serving.

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int = 0,
        service_ports: Mapping[str, int] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> str:
        """Serve the IdP side on ``host:port``, each service and the control API on their own
        ports (0 picks a free one; ``ssl_context`` serves them all over TLS). Returns the IdP
        side's URL."""
        if self._runners or self._idp_server is not None:
            raise RuntimeError("the proxy is already being served")
        from jitchaos.proxy._control import control_app

        unknown = set(service_ports or {}) - set(self.services)
        if unknown:
            raise InvalidArgument(f"service_ports names unknown services: {sorted(unknown)}")
        self.service_side.open(self._ca_context)
        try:
            scheme = "https" if ssl_context is not None else "http"
            self._idp_server = self.idp_side.server()
            bound = await self._idp_server.start(host, port, ssl_context)
            idp_url = self._urls["idp"] = base_url(scheme, host, bound)
            if self._idp_config is not None:
                self._own_idp = EmbeddedIdP(self._idp_config, clock=self.clock, issuer=idp_url)
                self.idp = self._own_idp
                self._upstream_url = await self._own_idp.start(host, 0)
            assert self._upstream_url is not None
            self.idp_side.connect(
                UpstreamIdP(
                    self._upstream_url,
                    own=frozenset({URL(idp_url).origin()}),
                    alias=self._own_idp is not None,
                    allowed=self._allowed_origins,
                ),
                self._ca_context,
            )
            if self.idp is None:  # a real upstream: its endpoints are pinned at start-up
                try:
                    await self.idp_side.discover()
                except ForeignEndpoint as error:
                    raise InvalidArgument(str(error)) from None
            for name in self.services:
                await self._serve(
                    f"service:{name}",
                    self.service_side.server(name),
                    host,
                    (service_ports or {}).get(name, 0),
                    ssl_context,
                    scheme,
                )
            await self._serve(
                "control", control_app(self), host, control_port, ssl_context, scheme
            )
        except BaseException:
            await self.stop()
            raise
        if self.horizon is not None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return idp_url

    async def _serve(
        self,
        listener: str,
        app: web.Application | web.BaseRunner,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        scheme: str,
    ) -> str:
        """Serve ``app`` (the control API) or a runner (a service side's, whose request bodies
        are streamed to the service)."""
        runner = (
            GuardedAppRunner(
                app,
                access_log=None,
                handle_signals=False,
                logger=quiet_client_mistakes("jitchaos.proxy.control"),
            )
            if isinstance(app, web.Application)
            else app
        )
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        self._urls[listener] = base_url(scheme, host, runner.addresses[0][1])
        return self._urls[listener]

    async def stop(self) -> None:
        """Stop every listener (and the embedded IdP the proxy started)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._idp_server is not None:
            await self._idp_server.stop()
            self._idp_server = None
        self._urls.clear()
        if self._own_idp is not None:
            await self._own_idp.stop()
            self._own_idp = None
        await self.idp_side.close()
        await self.service_side.close()
        await asyncio.sleep(0)  # closed transports finish closing before the loop may stop

    @contextmanager
    def in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[ChaosProxy]:
        """Serve on a background event loop for the length of the block (for sync tests)."""
        with BackgroundLoop(name="jitchaos-proxy") as loop:
            loop.run(self.start(host, port))
            self._loop = loop
            try:
                yield self
            finally:
                self._loop = None
                loop.run(self.stop())

    # Driving (the Python API; the control API calls the same).

    def load(self, schedule: Schedule) -> None:
        """Execute ``schedule`` from now on (step and request counts start from zero)."""
        self.engine.load(schedule)

    def apply(self, fault: AnyFault) -> AppliedFault:
        """Fire ``fault`` now."""
        if not isinstance(fault, tuple(FAULTS.values())):
            raise InvalidArgument(f"fault={fault!r} must be a fault value (jitchaos.faults)")
        return self.engine.apply(fault)

    def step(self) -> tuple[AppliedFault, ...]:
        """The driving test took a step; fire what waits for it."""
        return self.engine.advance_step()

    def advance(self, seconds: float) -> float:
        """Move the clock forward (it must be movable) and fire what waits for the time."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise InvalidArgument(f"the proxy's clock {self.clock!r} cannot be moved")
        now: float = advance(seconds)
        self.engine.tick()
        return now

    def retarget(self, name: str, url: str) -> None:
        """Send service ``name``'s traffic to ``url`` from now on (its listener stays)."""
        if name not in self.services:
            raise InvalidArgument(f"name={name!r} is not a configured service")
        parsed = service_target(url)
        if parsed is None:
            raise InvalidArgument(
                f"url={url!r} must be an http(s) URL with a host and no query or fragment"
            )
        self.services[name] = parsed

    def forget(self) -> int:
        """Let go of what is older than the :attr:`horizon`: grants closed before it (in the
        proxy's ledger and the embedded IdP's it started), decisions and faults recorded
        before it. What stays answers as before; a forgotten token is denied, and its verdict
        says it may have been forgotten. Returns how many grants went."""
        if self.horizon is None:
            raise InvalidArgument("this proxy has no horizon: it keeps everything")
        before = self.clock.now() - self.horizon
        # Decisions first, and a grant stays while a decision in memory is about it: a use
        # judged later (inside a leeway past exp) finds its token, never "never issued".
        self.history.forget(before)
        judged = {d.fingerprint for d in self.history.decisions if d.fingerprint is not None}
        gone = self.ledger.forget_closed(before, keep=judged)
        if self._own_idp is not None:
            self._own_idp.ledger.forget_closed(before)
        return gone

    async def _sweep(self) -> None:
        """:meth:`forget`, every so often (real seconds), while serving."""
        assert self.horizon is not None
        every = min(60.0, max(1.0, self.horizon / 4))
        while True:
            await asyncio.sleep(every)
            self.forget()

    def reset(self) -> None:
        """Forget the schedule, lasting effects and history (the ledger stays, like the
        audit log; only a :attr:`horizon` lets its closed grants go)."""
        self.engine.reset()
        self.history.clear()
        self.world.forget_delays()

    def _audit_fault(self, applied: AppliedFault) -> None:
        """Every fault record goes into the audit log beside the ledger's events (a sink
        that only takes ledger events, such as a test's list, is left as it is)."""
        write = getattr(self.ledger.audit, "write_fault", None)
        if write is not None:
            write(applied)

    def _count_fault(self, applied: AppliedFault) -> None:
        if applied.applied:
            self.metrics.fault(applied.fault.kind)
