"""The chaos proxy: services reach their IdP through it, and tests reach the services through it.

IdP side: forwards to the embedded or a real upstream IdP, rewrites discovery so every endpoint
is reached through the proxy, keeps its own ledger in step with the tokens it sees issued,
refreshed and revoked, and lets the schedule's faults act on that traffic. With the signing keys
(the embedded IdP's, or its own in re-signing mode) it can change what a token says; in
re-signing mode it verifies every upstream JWT against the upstream JWKS and re-mints it with
its own key, serving its own JWKS. Opaque tokens are read through upstream introspection and
changed through the introspection answers it relays.

Service side: one listener per service; it forwards test traffic unchanged and records each
decision (method, path, token fingerprint, status, time) in the history.

The proxy never contacts a target it was not configured with, and never draws random numbers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import heapq
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, InvalidURLError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from jitchaos._audit import AuditLog
from jitchaos._clock import Clock, SystemClock
from jitchaos._history import AppliedFault, History
from jitchaos._keys import KeyRing, SigningKey
from jitchaos._ledger import Ledger
from jitchaos._loop import BackgroundLoop
from jitchaos._records import (
    AuditSink,
    IssuedToken,
    Principal,
    TokenKind,
    TokenRecord,
    TokenStatus,
)
from jitchaos._schedule import Schedule
from jitchaos._tokens import fingerprint, format_scopes, parse_scopes
from jitchaos._wire import oauth_error
from jitchaos.errors import InvalidArgument, LedgerError
from jitchaos.faults import FAULTS, Answer, AnyFault, Exchange, Issue, NotApplicable
from jitchaos.idp import EmbeddedIdP, IdPConfig
from jitchaos.proxy._client import ConnectFailed, HttpClient, ProtocolFailed
from jitchaos.proxy._engine import FaultEngine
from jitchaos.proxy._jose import CompactJWS, parse_compact, sign_compact, verify_signature
from jitchaos.proxy._metrics import Metrics
from jitchaos.proxy._server import LeanServer, Reply, Request
from jitchaos.proxy._upstream import (
    DISCOVERY_PATHS,
    ENDPOINT_PATHS,
    Forwarded,
    UpstreamError,
    UpstreamIdP,
    upstream_error_answer,
)

__all__ = ["ChaosProxy"]

log = logging.getLogger("jitchaos.proxy")


_TOKENISH = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")  # what could be a token, in a log line


class _ClientMistakes(logging.Filter):
    """aiohttp logs a request it cannot parse (no Host, garbage, a bad header) at ERROR with
    its traceback; on the service side that is a client's mistake, answered with a 400, so
    it becomes one warning line naming it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            # aiohttp's message quotes the offending line after a colon, or is the request
            # target itself (InvalidURLError); either may carry a token.
            reason = type(error).__name__
            if not isinstance(error, InvalidURLError) and error.message:
                reason = _TOKENISH.sub("...", error.message.split(":", 1)[0].strip())[:100]
            record.msg = "a client sent a request that is not valid HTTP (answered %s): %s"
            record.args = (error.code, reason)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_service_log = logging.getLogger("jitchaos.proxy.service")
_service_log.addFilter(_ClientMistakes())

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",  # the proxy has the whole body, or answers 100 Continue itself
    }
)
# A service path may keep these as they came; anything else (non-ASCII) is percent-encoded.
_PATH_SAFE = "/%;:@!$&'()*+,=-._~"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# A token answer's own fields (RFC 6749 §5.1), replacing the upstream's.
_TOKEN_FIELDS = [*_NO_STORE.items(), ("Content-Type", "application/json")]
_TOKEN_OWN_FIELDS = frozenset(name.lower() for name, _ in _TOKEN_FIELDS)
_ROLE_CLAIMS = ("roles", "groups", "realm_access", "resource_access", "permissions")
_POST_ONLY = frozenset({"token", "introspection", "revocation"})
_REMEMBER_EXPIRED = 3600.0  # seconds a re-minted token's upstream original outlives its exp
_REFRESH_HORIZON = 30 * 86400  # when the upstream says nothing about refresh-token lifetime
_BUFFER_LIMIT = 1024 * 1024  # service answers up to this size are read whole, larger streamed
_SERVICE_NAME = "default"


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
        self.services: dict[str, URL] = {}
        if services is not None and not isinstance(services, Mapping):
            raise InvalidArgument(f"services={services!r} must map names to http(s) URLs")
        for name, url in (services or {}).items():
            parsed = _service_target(url)
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
        self._hold_limit = float(hold_limit)
        self.reuse_detection = bool(reuse_detection)
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
        self.ledger = Ledger(self.clock, audit=sink)
        self.history = History()
        self.metrics = Metrics()
        self.engine = FaultEngine(self, self.clock, self.history, on_fired=self._count_fault)
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
        self._upstream_timeout = float(upstream_timeout)
        self._upstream: UpstreamIdP | None = None
        self._client: HttpClient | None = None  # the IdP side's upstream requests
        self._session: aiohttp.ClientSession | None = None  # the service side's
        self._runners: list[web.BaseRunner] = []
        self._idp_server: LeanServer | None = None
        self._urls: dict[str, str] = {}
        self._honour_at: dict[str, float] = {}  # revoked fingerprint -> when the IdP honours it
        self._upstream_token: dict[str, str] = {}  # re-minted fingerprint -> upstream token
        self._upstream_token_expiry: list[tuple[float, str]] = []  # heap: (forget at, fingerprint)
        self._endpoints = {path: name for path, name in ENDPOINT_PATHS.values()}
        self._idp_jwks: dict[str, tuple[SigningKey, jwt.PyJWK]] = {}
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
        self._client = HttpClient(timeout=self._upstream_timeout, ssl_context=self._ca_context)
        self._session = aiohttp.ClientSession(
            # No total: a long download is no failure; silence for the timeout is.
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self._upstream_timeout, sock_read=self._upstream_timeout
            ),
            auto_decompress=False,
            connector=aiohttp.TCPConnector(ssl=self._ca_context or True, limit=0),
            skip_auto_headers=("User-Agent",),
        )
        try:
            scheme = "https" if ssl_context is not None else "http"
            self._idp_server = LeanServer(
                self._idp_app(), client_max_size=_IDP_BODY_LIMIT, refusal=_idp_refusal
            )
            bound = await self._idp_server.start(host, port, ssl_context)
            idp_url = self._urls["idp"] = _base_url(scheme, host, bound)
            if self._idp_config is not None:
                self._own_idp = EmbeddedIdP(self._idp_config, clock=self.clock, issuer=idp_url)
                self.idp = self._own_idp
                self._upstream_url = await self._own_idp.start(host, 0)
            assert self._upstream_url is not None
            self._upstream = UpstreamIdP(
                self._upstream_url,
                own=frozenset({URL(idp_url).origin()}),
                alias=self._own_idp is not None,
            )
            for name, target in self.services.items():
                await self._serve(
                    f"service:{name}",
                    self._service_app(name, target),
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
        return idp_url

    async def _serve(
        self,
        listener: str,
        app: web.Application | Handler,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        scheme: str,
    ) -> str:
        """Serve ``app`` (the control API) or a bare handler (a service side, whose request
        bodies are streamed to the service)."""
        runner: web.BaseRunner
        if isinstance(app, web.Application):
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
        else:
            # A service side: aiohttp's low-level server, one handler and no router or
            # middleware chain (about 10 us a request less on the hot path).
            runner = web.ServerRunner(
                web.Server(app, access_log=None, logger=_service_log), handle_signals=False
            )
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        self._urls[listener] = _base_url(scheme, host, runner.addresses[0][1])
        return self._urls[listener]

    async def stop(self) -> None:
        """Stop every listener (and the embedded IdP the proxy started)."""
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
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None
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
        parsed = _service_target(url)
        if parsed is None:
            raise InvalidArgument(
                f"url={url!r} must be an http(s) URL with a host and no query or fragment"
            )
        self.services[name] = parsed

    def reset(self) -> None:
        """Forget the schedule, lasting effects and history (the ledger, like the audit log,
        only grows)."""
        self.engine.reset()
        self.history.clear()
        self._honour_at.clear()

    # The World faults act on (each change is a ledger event).

    def now(self) -> float:
        return self.clock.now()

    def revoke(self, target: str, *, delay: float) -> str:
        event = self.ledger.revoke(**self._selector(target), reason="jitchaos fault: revoke")
        if event is None:
            return f"nothing live to revoke for {target}"
        if delay:
            honour = self.clock.now() + delay
            for fp in event.fingerprints:
                self._honour_at[fp] = honour
        late = f", honoured {delay:g}s later" if delay else ""
        return (
            f"revoked {len(event.fingerprints)} token(s) of {', '.join(event.grant_ids)}"
            f" ({', '.join(event.fingerprints)}){late}"
        )

    def expire(self, target: str) -> str:
        event = self.ledger.expire(**self._selector(target), reason="jitchaos fault: expire")
        if event is None:
            return f"nothing live to expire for {target}"
        return (
            f"expired {len(event.fingerprints)} token(s) of {', '.join(event.grant_ids)}"
            f" ({', '.join(event.fingerprints)})"
        )

    def narrow(self, target: str, scopes: frozenset[str]) -> str:
        selector = self._selector(target)
        if "token" in selector:
            record = self.ledger.lookup(selector["token"])
            grant_ids = [record.grant_id] if record is not None else []
        elif "grant" in selector:
            grant_ids = [self.ledger.get_grant(selector["grant"]).grant_id]
        else:
            now = self.clock.now()
            grant_ids = [
                g.grant_id
                for g in self.ledger.open_grants(now)
                if g.principal == selector["principal"]
            ]
        changed = []
        for grant_id in grant_ids:
            grant = self.ledger.get_grant(grant_id)
            event = self.ledger.narrow(grant_id, grant.scopes & scopes)
            if event is not None:
                changed.append(f"{grant_id} to [{format_scopes(event.scopes)}]")
        return f"narrowed {', '.join(changed)}" if changed else f"nothing to narrow for {target}"

    def rotate_keys(self, mode: str, ahead: float = 0.0) -> str:
        keys = self.keys
        if keys is None:
            raise NotApplicable(
                "rotating keys needs the signing keys: front the embedded IdP or use --resign"
            )
        signing = keys.signing_key(self.clock.now())
        # Each key is recorded in the ledger before it is published or signs.
        if mode == "publish-ahead":
            key = keys.new_key()
            event = self.ledger.publish_key(key.kid, ahead=ahead)
            keys.publish(event.signs_from, key=key)
            return f"published kid {key.kid}; it signs from t+{ahead:g}s"
        if mode == "add":
            key = keys.new_key()
            self.ledger.publish_key(key.kid)
            keys.rotate(key=key)
            return f"signing with new kid {key.kid} at once"
        if mode == "rekey":
            kid = signing.kid
            self.ledger.withdraw_key(kid, reason=f"the key behind kid {kid} was replaced")
            keys.rekey()
            self.ledger.publish_key(kid)
            return f"kid {kid} now stands for a new key; tokens it signed before fail"
        if len(keys.keys) == 1:
            key = keys.new_key()
            self.ledger.publish_key(key.kid)
            keys.rotate(key=key)
        # Keys published ahead that do not sign yet are the new ones: they stay.
        removed = [
            key.kid for key in keys.keys if key is not keys.current and not keys.is_pending(key)
        ]
        for kid in removed:
            self.ledger.withdraw_key(kid, reason=f"signing key {kid} removed")
            keys.remove(kid)
        return f"removed kid(s) {', '.join(removed)}; signing with {keys.current.kid}"

    def hold_limit(self) -> float:
        return self._hold_limit

    def _selector(self, target: str) -> dict[str, Any]:
        kind, _, rest = target.partition(":")
        if kind == "token":
            record = self.ledger.lookup(rest)
            if record is None:
                raise LedgerError(f"target {target} names no token the proxy has seen")
            if record.token.kind is TokenKind.REFRESH:
                return {"grant": record.grant_id}  # a refresh token stands for its family
            return {"token": rest}
        if kind == "grant":
            return {"grant": rest}
        if kind == "principal":
            return {"principal": Principal.parse(rest)}
        raise NotApplicable(f"target {target!r} names no token, grant or principal")

    def _count_fault(self, applied: AppliedFault) -> None:
        if applied.applied:
            self.metrics.fault(applied.fault.kind)

    # The IdP side.

    def _idp_app(self) -> Callable[[Request], Awaitable[web.Response | Reply]]:
        discovery = frozenset(DISCOVERY_PATHS)
        post_only = frozenset(path for path, name in self._endpoints.items() if name in _POST_ONLY)

        async def handle(request: Request) -> web.Response | Reply:
            refused = _foreign_target(request)
            if refused is not None:
                return refused
            try:
                path = await self._route(request.path)
            except UpstreamError as error:
                return _gateway_error(error)
            if request.method == "OPTIONS" and (path in discovery or path in post_only):
                return await self._preflight(request, path)  # CORS, for clients in browsers
            if path in discovery:
                if request.method in ("GET", "HEAD"):
                    return await self._discovery(request)
                return _not_allowed(request, "GET, HEAD")
            if path in post_only and request.method != "POST":
                # RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1: the upstream would refuse it.
                return _not_allowed(request, "POST")
            return await self._idp_request(request, path)

        return handle

    async def _route(self, path: str) -> str:
        """The proxy path that the request path ``path`` reaches, by any spelling a lenient
        upstream would take for it: ``/foo/../token``, ``/Token;x=1`` and the upstream's own
        token endpoint path are all ``/token``, so that no request for an endpoint bypasses
        its faults and the ledger. Other paths are their own (and forwarded as they are)."""
        if path in self._endpoints:
            return path
        upstream = self._require_upstream()
        # The path as written and as it would be forwarded (dot segments resolved by yarl):
        # routing either to an endpoint errs on the side of the endpoint's handling.
        spellings = (path, upstream.origin.with_path(path).path)
        routed = upstream.route(*spellings)
        if routed is None and not upstream.discovered():
            await upstream.ensure_discovered(self._forward)  # the endpoints' own paths
            routed = upstream.route(*spellings)
        if routed is None or self._endpoints.get(routed) == "other":
            # Not one the proxy handles (authorize, logout): forwarded as written, with any
            # ;jsessionid a Java IdP's browser flow relies on.
            return path
        return routed

    async def _preflight(self, request: Request, path: str) -> web.Response | Reply:
        """A CORS preflight for discovery or a token, introspection or revocation endpoint:
        relayed to the upstream's (the upstream decides what browsers may do), counted as
        no request to the endpoint, faults untouched."""
        upstream = self._require_upstream()
        try:
            await upstream.ensure_discovered(self._forward)
            target = upstream.endpoint_url(path) or upstream.discovery_url
            answer = await self._forward("OPTIONS", target, _request_headers(request), b"")
        except UpstreamError as error:
            return _gateway_error(error)
        return _relay(answer)

    async def _discovery(self, request: Request) -> web.Response:
        upstream = self._require_upstream()
        refused = await self._before(request, "discovery")
        if refused is not None:
            return refused
        try:
            answer = await self._forward("GET", upstream.discovery_url, {}, b"")
            metadata = upstream.adopt_answer(answer)
        except UpstreamError as error:
            return _gateway_error(error)
        base = str(request.url.origin())
        rewritten = dict(metadata)
        for field, (path, _) in ENDPOINT_PATHS.items():
            if field in upstream.endpoints:
                rewritten[field] = base + path
        if self._own_keys is not None:
            rewritten["id_token_signing_alg_values_supported"] = [self._own_keys.algorithm]
        return web.json_response(rewritten)

    async def _idp_request(self, request: Request, path: str) -> web.Response | Reply:
        upstream = self._require_upstream()
        endpoint = self._endpoints.get(path, "other")
        body = await request.read()
        form = _form(request, body)
        refresh = endpoint == "token" and form.get("grant_type") == "refresh_token"
        self.metrics.request("idp", endpoint)
        self.engine.request(endpoint) if endpoint != "other" else self.engine.tick()
        carried = _carried_token(endpoint, request, form)
        if carried is not None:
            self.engine.offer_token(fingerprint(carried))
        answer = await self.engine.before(Exchange(endpoint, refresh=refresh))  # type: ignore[arg-type]
        if answer is not None:
            return _fault_response(answer)
        try:
            await upstream.ensure_discovered(self._forward)
            target = upstream.endpoint_url(path)
            if target is None and endpoint == "other":
                # A pass-through (authorize, a login page) goes as the client wrote it: %2F
                # stays %2F. Routing read the decoded spelling, so no endpoint is reached so.
                target = URL.build(
                    scheme=upstream.origin.scheme,
                    authority=upstream.origin.raw_authority,
                    path=request.raw_path,
                    query_string=request.query_string,
                    encoded=True,
                )
            else:
                if target is None:
                    target = upstream.origin.with_path(path)
                if request.query_string:
                    target = target.with_query(request.query)
            if endpoint == "jwks" and self._own_keys is not None:
                return web.json_response(self._own_keys.jwks())
            if endpoint == "token":
                return await self._token(request, target, body, form, refresh)
            if endpoint == "introspection":
                return await self._introspection(request, target, body, form)
            if endpoint == "revocation":
                return await self._revocation(request, target, body, form)
            if endpoint == "userinfo":
                return await self._userinfo(request, target, body)
            answer_ = await self._forward(request.method, target, _request_headers(request), body)
            return _relay(answer_)
        except UpstreamError as error:
            return _gateway_error(error)

    async def _before(self, request: Request, endpoint: str) -> web.Response | None:
        self.metrics.request("idp", endpoint)
        self.engine.request(endpoint)
        answer = await self.engine.before(Exchange(endpoint))  # type: ignore[arg-type]
        return _fault_response(answer) if answer is not None else None

    async def _token(
        self,
        request: Request,
        target: URL,
        body: bytes,
        form: dict[str, str],
        refresh: bool,
    ) -> web.Response | Reply:
        now = self.clock.now()
        presented = form.get("refresh_token") if refresh else None
        spent = self.ledger.lookup(fingerprint(presented)) if presented else None
        if spent is not None and self._refused(spent, now, refresh=True):
            return _oauth_error(
                "invalid_grant", f"the refresh token is {spent.status(now).value} (jitchaos)"
            )
        answer = await self._forward("POST", target, _request_headers(request), body)
        payload = answer.json_object() if answer.status == 200 else None
        if payload is None or not isinstance(payload.get("access_token"), str):
            # A concurrent refresh may have spent it while this one was in flight.
            spent = self.ledger.lookup(spent.token.fingerprint) if spent is not None else None
            refusal = answer.json_object() if answer.status == 400 else None
            if (
                spent is not None
                and self.reuse_detection
                and refusal is not None
                and refusal.get("error") == "invalid_grant"
                and spent.status(self.clock.now()) is TokenStatus.SPENT
            ):
                # The upstream saw a rotated refresh token again and ended its grant (any
                # other refusal, a client that failed to authenticate, ends nothing).
                self.ledger.revoke(grant=spent.grant_id, reason="refresh token reused")
            return _relay(answer)
        client_id = _client_id(request, form)
        edited = await self._issued(payload, form, client_id, request, spent)
        headers = [(k, v) for k, v in answer.headers if k.lower() not in _TOKEN_OWN_FIELDS]
        headers += _TOKEN_FIELDS
        # Unchanged, the upstream's own bytes go out: no re-serialising, nothing reformatted.
        body = json.dumps(payload).encode() if edited else answer.body
        return Reply(200, headers, body)

    async def _issued(
        self,
        payload: dict[str, Any],
        form: dict[str, str],
        client_id: str | None,
        request: Request,
        spent: TokenRecord | None,
    ) -> bool:
        """Read what the upstream issued, let faults change it, re-mint when needed, record it
        in the ledger; ``payload`` becomes what the client gets. Whether it was edited."""
        now = self.clock.now()
        raw = payload["access_token"]
        parsed = parse_compact(raw)
        header = parsed.header if parsed is not None else None
        claims = parsed.claims if parsed is not None else None
        info: dict[str, Any] = claims or await self._introspect_upstream(raw, request) or {}
        scopes = _scope_field(payload.get("scope"))
        if scopes is None:
            scopes = _scope_field(info.get("scope", info.get("scp")))
        if scopes is None:
            scopes = parse_scopes(form.get("scope", ""))
        expires_in = payload.get("expires_in")
        lifetime = expires_in if isinstance(expires_in, int) and expires_in > 0 else 3600
        issued_at = _number(info.get("iat"), now)
        issue = Issue(
            issued_at=issued_at,
            not_before=_number(info.get("nbf"), issued_at),
            expires_at=_number(info.get("exp"), now + lifetime),
            scopes=scopes,
        )
        original = Issue(
            issued_at=issue.issued_at,
            not_before=issue.not_before,
            expires_at=issue.expires_at,
            scopes=issue.scopes,
        )
        grant = self.ledger.get_grant(spent.grant_id) if spent is not None else None
        if grant is not None:  # a narrowed grant's refreshes carry only what it still has
            issue.scopes &= grant.scopes
            issue.drop_roles = grant.scopes < grant.scope_history[0][1]
        signer = self.keys
        # An opaque token changes through the introspection answers the proxy relays; a JWT
        # only when the proxy can re-mint it.
        editable = header is None or (signer is not None and claims is not None)
        self.engine.edit_issue(
            issue,
            editable=editable,
            why_not="cannot change a JWT without the signing keys: front the embedded IdP "
            "or use --resign",
        )
        changed = issue != original
        edited = changed
        token = raw
        access_fingerprint = None
        kid = header.get("kid") if header is not None else None
        if parsed is not None and signer and (changed or self.resign):
            assert header is not None
            assert claims is not None
            await self._verified(parsed)
            signing = signer.signing_key(now)
            token = _remint(claims, header, issue, signing)
            kid = signing.kid
            access_fingerprint = fingerprint(token)
            self._remember_upstream_token(
                access_fingerprint, raw, now + (issue.expires_at - issue.issued_at)
            )
            payload["access_token"] = token
            edited = True
        if changed:
            payload["expires_in"] = max(0, int(issue.expires_at - now))
            payload["scope"] = format_scopes(issue.scopes)
        id_token = payload.get("id_token")
        if self.resign and signer is not None and isinstance(id_token, str):
            parsed_id = parse_compact(id_token)
            if parsed_id is not None:
                await self._verified(parsed_id)
                payload["id_token"] = _resign_plain(
                    parsed_id.claims, parsed_id.header, signer.signing_key(now)
                )
                edited = True
        access = IssuedToken(
            fingerprint=access_fingerprint or fingerprint(token),
            kind=TokenKind.ACCESS,
            issued_at=issue.not_before,
            expires_at=max(issue.expires_at, issue.not_before + 1),
            scopes=issue.scopes,
            kid=kid,
        )
        tokens = [access]
        refresh_raw = payload.get("refresh_token")
        if (
            isinstance(refresh_raw, str)
            and refresh_raw
            and refresh_raw != form.get("refresh_token")
        ):
            refresh_in = payload.get("refresh_expires_in")
            horizon = refresh_in if isinstance(refresh_in, int) and refresh_in > 0 else None
            tokens.append(
                IssuedToken(
                    fingerprint=fingerprint(refresh_raw),
                    kind=TokenKind.REFRESH,
                    issued_at=now,
                    expires_at=now + (horizon or _REFRESH_HORIZON),
                    scopes=grant.scopes if grant is not None else issue.scopes,
                )
            )
        self._record_issue(tokens, spent, form, client_id, info, issue.scopes)
        self.engine.event("first-refresh" if spent is not None else "first-grant")
        self.engine.offer_token(access.fingerprint)
        return edited

    def _record_issue(
        self,
        tokens: list[IssuedToken],
        spent: TokenRecord | None,
        form: dict[str, str],
        client_id: str | None,
        info: dict[str, Any],
        scopes: frozenset[str],
    ) -> None:
        try:
            if spent is not None and spent.status(self.clock.now()) is TokenStatus.ACTIVE:
                self.ledger.refresh(spent.token.fingerprint, tokens=tokens)
                return
            client = client_id or str(info.get("client_id") or info.get("azp") or "unknown")
            subject = info.get("sub")
            if spent is not None:
                principal = spent.principal
            elif form.get("grant_type") == "client_credentials" or not isinstance(subject, str):
                principal = Principal.client(client)
            else:
                principal = Principal.subject(subject or client)
            self.ledger.grant(principal=principal, client_id=client, scopes=scopes, tokens=tokens)
        except (LedgerError, InvalidArgument) as error:
            # The IdP issued it whatever the ledger thinks; say so rather than fail the client.
            log.warning("ledger could not record an issued token: %s", error)

    async def _verified(self, token: CompactJWS) -> None:
        """Check an upstream JWT before re-minting it: the proxy never launders a token the
        upstream did not sign. Raises :class:`UpstreamError` (a 502) when it fails."""
        upstream = self._require_upstream()
        kid = token.header.get("kid")
        key = None
        if self.idp is not None and isinstance(kid, str):
            key = self._idp_key(kid)
        elif isinstance(kid, str):
            key = await upstream.key(kid, self._forward)
        issuer = upstream.metadata.get("issuer") if upstream.metadata else None
        try:
            if key is None:
                raise jwt.InvalidKeyError(f"the upstream publishes no key with kid {kid!r}")
            verify_signature(token, key, issuer=issuer)
        except jwt.PyJWTError as error:
            raise UpstreamError(
                502, upstream.name, f"an issued token failed verification: {error}"
            ) from None

    def _idp_key(self, kid: str) -> jwt.PyJWK | None:
        assert self.idp is not None
        signing = self.idp.keys.get(kid)
        if signing is None:
            return None
        cached = self._idp_jwks.get(kid)
        if cached is None or cached[0] is not signing:  # a rekeyed kid is a new key
            cached = (signing, jwt.PyJWK(signing.public_jwk()))
            self._idp_jwks[kid] = cached
        return cached[1]

    async def _introspect_upstream(self, token: str, request: Request) -> dict[str, Any] | None:
        """RFC 7662 on an opaque upstream token, with the requesting client's credentials."""
        upstream = self._require_upstream()
        target = upstream.endpoints.get("introspection_endpoint")
        if target is None:
            return None
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        form = _form(request, await request.read())
        fields = {"token": token}
        for name in ("client_id", "client_secret"):
            if name in form:
                fields[name] = form[name]
        answer = await self._forward(
            "POST", target, headers, urllib.parse.urlencode(fields).encode()
        )
        data = answer.json_object() if answer.status == 200 else None
        return data if data is not None and data.get("active") is True else None

    async def _introspection(
        self, request: Request, target: URL, body: bytes, form: dict[str, str]
    ) -> web.Response | Reply:
        raw = form.get("token")
        answer = await self._forward(
            "POST", target, _request_headers(request), self._upstream_form(body, form)
        )
        data = answer.json_object() if answer.status == 200 else None
        record = self.ledger.lookup(fingerprint(raw)) if raw else None
        if data is None or record is None:
            return _relay(answer)
        now = self.clock.now()
        if self._refused(record, now):
            return web.json_response({"active": False}, headers=_NO_STORE)  # RFC 7662 §2.2
        if data.get("active") is True:
            grant = self.ledger.get_grant(record.grant_id)
            data["exp"] = int(record.token.expires_at)
            data["scope"] = format_scopes(record.token.scopes & grant.scopes_at(now))
            if grant.scopes_at(now) < grant.scope_history[0][1]:
                for claim in _ROLE_CLAIMS:
                    data.pop(claim, None)
        return web.json_response(data, headers=_NO_STORE)

    async def _revocation(
        self, request: Request, target: URL, body: bytes, form: dict[str, str]
    ) -> web.Response | Reply:
        raw = form.get("token")
        answer = await self._forward(
            "POST", target, _request_headers(request), self._upstream_form(body, form)
        )
        record = self.ledger.lookup(fingerprint(raw)) if raw else None
        if answer.status == 200 and record is not None:
            family = record.token.kind is TokenKind.REFRESH
            try:
                self.ledger.revoke(
                    grant=record.grant_id if family else None,
                    token=None if family else record.token.fingerprint,
                    reason="revoked by its client through the IdP",
                )
            except (LedgerError, InvalidArgument) as error:
                log.warning("ledger could not record a revocation: %s", error)
        return _relay(answer)

    async def _userinfo(self, request: Request, target: URL, body: bytes) -> web.Response | Reply:
        headers = _request_headers(request)
        raw = _bearer(request)
        if raw is not None:
            record = self.ledger.lookup(fingerprint(raw))
            if record is not None and self._refused(record, self.clock.now()):
                return web.json_response(
                    {"error": "invalid_token", "error_description": "the token is not active"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            headers["Authorization"] = f"Bearer {self._upstream_token.get(fingerprint(raw), raw)}"
        return _relay(await self._forward(request.method, target, headers, body))

    def _remember_upstream_token(self, reminted: str, raw: str, expires_at: float) -> None:
        """Note which upstream token a re-minted one stands for (introspection, revocation and
        userinfo send the upstream its own), and forget those expired for an hour: a proxy in
        front of staging re-mints for days, and an expired token's answers need no original."""
        self._upstream_token[reminted] = raw
        # ``expires_at`` is on the proxy's clock (now + the token's lifetime): an upstream's
        # own exp may be hours from the proxy's clock when tests move it.
        heapq.heappush(self._upstream_token_expiry, (expires_at + _REMEMBER_EXPIRED, reminted))
        now = self.clock.now()
        while self._upstream_token_expiry and self._upstream_token_expiry[0][0] < now:
            _, gone = heapq.heappop(self._upstream_token_expiry)
            self._upstream_token.pop(gone, None)

    def _upstream_form(self, body: bytes, form: dict[str, str]) -> bytes:
        """The body with a re-minted token swapped back for the upstream's own."""
        raw = form.get("token")
        original = self._upstream_token.get(fingerprint(raw)) if raw else None
        if original is None:
            return body
        return urllib.parse.urlencode({**form, "token": original}).encode()

    def _refused(self, record: TokenRecord, now: float, *, refresh: bool = False) -> bool:
        """Whether the IdP side treats the token as dead now (a delayed revocation is honoured
        only once its delay has passed; reuse of spent refresh tokens is the upstream's call)."""
        status = record.status(now)
        if status is TokenStatus.REVOKED:
            return now >= self._honour_at.get(record.token.fingerprint, now)
        if status is TokenStatus.NOT_YET_VALID:
            return not refresh
        return status is TokenStatus.EXPIRED

    def _require_upstream(self) -> UpstreamIdP:
        if self._upstream is None:
            raise RuntimeError("the proxy is not being served")
        return self._upstream

    async def _forward(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes
    ) -> Forwarded:
        """One request to the upstream IdP, read whole; failures become :class:`UpstreamError`."""
        assert self._client is not None
        headers = CIMultiDict(headers)
        headers["Accept-Encoding"] = "identity"
        try:
            answer = await self._client.request(method, url, headers, body)
        except TimeoutError:
            upstream = self._require_upstream().name
            raise UpstreamError(
                504, upstream, f"no answer within {self._upstream_timeout:g}s"
            ) from None
        except ConnectFailed as error:
            upstream = self._require_upstream().name
            raise UpstreamError(502, upstream, f"unreachable ({error.os_error})") from None
        except (ProtocolFailed, ValueError) as error:
            upstream = self._require_upstream().name
            raise UpstreamError(502, upstream, f"{type(error).__name__}: {error}") from None
        kept = tuple(
            (name, value)
            for name, value in answer.headers
            if (lowered := name.lower()) not in _HOP_BY_HOP and lowered != "content-encoding"
        )
        return Forwarded(answer.status, kept, answer.body)

    # The service side.

    def _service_app(self, name: str, target: URL) -> Handler:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            refused = _foreign_target(request)
            if refused is not None:
                return refused
            return await self._service_request(request, name, self.services[name])

        return handle

    async def _service_request(
        self, request: web.BaseRequest, name: str, target: URL
    ) -> web.StreamResponse:
        assert self._session is not None
        started = time.perf_counter()
        self.engine.tick()
        if request.version < (1, 1) and "Transfer-Encoding" in request.headers:
            # RFC 9112 §6.1: faulty framing in HTTP/1.0; the service might read the body
            # another way and see a second, smuggled request.
            return _problem(400, "an HTTP/1.0 request cannot carry Transfer-Encoding")
        resolved = _service_url(target, request)
        if resolved is None:
            return _problem(
                400,
                "an encoded slash next to a dot segment (..%2F) could climb out of service "
                f"{name}'s base path; write the path plainly",
            )
        path, url = resolved
        if (
            request.headers.get("Expect", "").lower() == "100-continue"
            and request.version >= (1, 1)
            and request.body_exists
        ):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as aiohttp's router
        raw = _bearer(request) or request.query.get("access_token")
        token = fingerprint(raw) if raw else None
        response: web.StreamResponse | None = None
        try:
            # Until the service answers, silence is bounded by a watchdog that each piece of
            # an upload pushes back (a slow upload is no timeout; a service that stops reading
            # it is); then by the session's sock_read, which a long download keeps resetting.
            async with asyncio.timeout(self._upstream_timeout) as watchdog:
                headers = _request_headers(request)
                data: bytes | AsyncIterator[bytes] | None = None
                if token is None and _may_carry_form_token(request):
                    data = await request.read()  # small: read whole for its token, sent on
                    raw = _form_fields(data).get("access_token")
                    token = fingerprint(raw) if raw else None
                elif request.body_exists:
                    if "Content-Encoding" in headers:
                        headers.popall("Content-Encoding")  # aiohttp has decoded the body
                    elif request.content_length is not None:
                        headers["Content-Length"] = str(request.content_length)  # not chunked
                    data = _progress(request.content, watchdog, self._upstream_timeout)
                if token is not None:
                    self.engine.offer_token(token)
                async with self._session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                ) as upstream:
                    watchdog.reschedule(None)
                    fields = _end_to_end(upstream.headers)
                    length = upstream.content_length
                    if request.method == "HEAD" or upstream.status in (204, 304):
                        response = web.StreamResponse(status=upstream.status, headers=fields)
                        if length is not None and request.method == "HEAD":
                            response.content_length = length  # what a GET would carry
                    elif length is not None and length <= _BUFFER_LIMIT:
                        response = web.Response(
                            status=upstream.status, body=await upstream.read(), headers=fields
                        )
                    else:
                        response = web.StreamResponse(status=upstream.status, headers=fields)
                        if length is not None:
                            response.content_length = length
                        await response.prepare(request)
                        async for chunk in upstream.content.iter_chunked(64 * 1024):
                            await response.write(chunk)
                        await response.write_eof()
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
            if response is not None and response.prepared:
                # Its status line and part of its body are out: a second answer would land
                # inside the first. The client sees the connection end short of the body.
                log.warning(
                    "service %s: the answer to %s %s was cut short (%s)",
                    name,
                    request.method,
                    path,
                    type(error).__name__,
                )
                if request.transport is not None:
                    request.transport.close()
            else:
                status = 504 if isinstance(error, TimeoutError) else 502
                why = "no answer in time" if status == 504 else _unreachable(error)
                response = _problem(status, f"service {name} at {target.origin()}: {why}")
                response.headers["X-Jitchaos-Upstream"] = str(target.origin())
        decision = self.history.decision(
            at=self.clock.now(),
            step=self.engine.step,
            service=name,
            method=request.method,
            path=path,
            fingerprint=token,
            status=response.status,
            ledger_seq=self.ledger.seq,
            holder=self.holder,
            latency=time.perf_counter() - started,
        )
        record = getattr(self.ledger.audit, "write_decision", None)
        if record is not None:
            try:
                record(decision)
            except OSError as error:  # the service already answered; say so, keep serving
                log.error("could not write a decision to the audit log: %s", error)
        self.metrics.decision(name, response.status)
        if token is not None and 200 <= response.status < 300 and self.engine.event("first-use"):
            self.engine.offer_token(token)  # what fired on first use acts on this token
        return response


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


_IDP_BODY_LIMIT = 256 * 1024
"""Token, introspection and revocation requests are small; anything larger is refused."""


def _idp_refusal(status: int, why: str) -> web.Response:
    """What the IdP side's server answers to a request it refuses itself: OAuth clients read
    JSON errors (RFC 6749 §5.2), not a server's text/plain."""
    return _oauth_error("server_error" if status >= 500 else "invalid_request", why, status)


def _not_allowed(request: Request, allow: str) -> web.Response:
    refusal = _idp_refusal(
        405, f"{request.method} {request.path[:100]}: this endpoint answers {allow} only"
    )
    refusal.headers["Allow"] = allow
    return refusal


def _http_url(url: object) -> URL | None:
    """``url`` parsed, or None when it is not a str or not a URL at all."""
    if not isinstance(url, str):
        return None
    try:
        return URL(url)
    except ValueError:  # yarl: an invalid IPv6 literal, a bad port
        return None


def _service_target(url: object) -> URL | None:
    """A service's base URL, or None: http(s), a host that can be one (a DNS name or an IP
    address, not ``a b``), and no query or fragment (they would be dropped from every
    request, silently)."""
    parsed = _http_url(url)
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.raw_host:
        return None
    if parsed.raw_query_string or parsed.raw_fragment:
        return None
    host = parsed.raw_host
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)  # also with a zone: fe80::1%eth0
        except ValueError:
            return None
        return parsed
    return parsed if _valid_host(host) else None


def _base_url(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


_HOST = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?")


def _valid_host(host: str) -> bool:
    """host[:port]: a DNS name, an IPv4 address or a bracketed IPv6 address."""
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    if match.group(1) is not None:
        try:
            ipaddress.IPv6Address(match.group(1))
        except ValueError:
            return False
    return True


def _foreign_target(request: web.BaseRequest | Request) -> web.Response | None:
    """No open proxy. The proxy always forwards to its configured target, whatever a request
    names; a request that names another target (CONNECT, or an absolute-form or Host authority
    on another port than the listener's own) is refused rather than quietly redirected."""
    host = request.host
    if host and not _valid_host(host):
        # Reflected into discovery's endpoint URLs, so it must be a host (and port) and nothing
        # else: RFC 9110 §7.2, with a reg-name (RFC 3986 §3.2.2) of the characters DNS uses.
        return _problem(400, f"the Host header {host[:100]!r} is not host[:port]")
    if request.method == "CONNECT" or _names_another_target(request):
        return _problem(
            403,
            "jitchaos forwards only to the upstream and services it was configured with; "
            f"refusing {request.method} for {request.host[:100]}",
        )
    return None


def _names_another_target(request: web.BaseRequest | Request) -> bool:
    if isinstance(request, Request):
        sockname = request.sockname
    else:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        return False
    if (
        not isinstance(request, Request)
        and "Host" not in request.headers
        and request.raw_path.startswith("/")
    ):
        return False  # HTTP/1.0 without Host, in origin form: to whoever listens here
    host = request.host
    if host.startswith("["):  # [IPv6]:port
        port = host.partition("]")[2].removeprefix(":")
    elif host.count(":") == 1:
        port = host.rpartition(":")[2]
    else:
        port = ""  # no port given
    if not port:
        return int(sockname[1]) != (443 if request.scheme == "https" else 80)
    return not port.isdigit() or int(port) != int(sockname[1])


def _problem(status: int, detail: str) -> web.Response:
    """RFC 9457 problem details."""
    from http import HTTPStatus

    return web.json_response(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        },
        status=status,
        content_type="application/problem+json",
    )


def _gateway_error(error: UpstreamError) -> web.Response:
    return web.json_response(upstream_error_answer(error), status=error.status, headers=_NO_STORE)


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response(oauth_error(error, description), status=status, headers=_NO_STORE)


def _fault_response(answer: Answer) -> web.Response:
    return web.Response(
        status=answer.status,
        body=answer.body,
        content_type=answer.content_type,
        headers=_NO_STORE,
    )


def _relay(answer: Forwarded) -> Reply:
    return Reply(answer.status, answer.headers, answer.body)


def _end_to_end(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The fields a proxy passes on, repeats kept: not the hop-by-hop ones, nor those the
    message's Connection field names (RFC 9110 §7.6.1)."""
    listed = {
        token.strip().lower()
        for value in headers.getall("Connection", [])
        for token in value.split(",")
    }
    return CIMultiDict(
        (k, v)
        for k, v in headers.items()
        if (lowered := k.lower()) not in _HOP_BY_HOP and lowered not in listed
    )


def _request_headers(request: web.BaseRequest | Request) -> CIMultiDict[str]:
    return _end_to_end(request.headers)


def _service_url(target: URL, request: web.BaseRequest) -> tuple[str, URL] | None:
    """The service's URL for a request, as the client wrote its path and query (percent
    escapes kept: ``%2F`` stays ``%2F``, ``%26`` in a value stays one), and the path as the
    history records it. Dot segments (also ``%2e%2e``) are resolved first, so ``/../admin``
    cannot climb out of ``--service http://host/api``. None for a segment that a server
    decoding before it resolves would read as one next to a slash (``..%2F``, ``%5C..``)."""
    segments = request.rel_url.raw_path.split("/")[1:]
    kept: list[str] = []
    for position, segment in enumerate(segments):
        decoded = urllib.parse.unquote(segment)
        if decoded in (".", ".."):
            if decoded == ".." and kept:
                kept.pop()
            if position == len(segments) - 1:
                kept.append("")  # "/a/." is "/a/"
            continue
        if any(part in (".", "..") for part in re.split(r"[/\\]", decoded)):
            return None
        kept.append(segment)
    raw_path = urllib.parse.quote("/" + "/".join(kept), safe=_PATH_SAFE)
    query = request.rel_url.raw_query_string
    url = URL(
        f"{target.scheme}://{target.raw_authority}{target.raw_path.rstrip('/')}{raw_path}"
        + (f"?{query}" if query else ""),
        encoded=True,
    )
    return URL.build(path=raw_path, encoded=True).path, url


async def _progress(
    content: aiohttp.StreamReader, watchdog: asyncio.Timeout, seconds: float
) -> AsyncIterator[bytes]:
    """The request body as it comes, each piece the service takes pushing the watchdog back."""
    loop = asyncio.get_running_loop()
    async for chunk in content.iter_any():
        watchdog.reschedule(loop.time() + seconds)
        yield chunk


def _may_carry_form_token(request: web.BaseRequest) -> bool:
    """A form body that may carry the access token (RFC 6750 §2.2: not with GET), small enough
    to read whole before forwarding it."""
    length = request.content_length
    return (
        request.method not in ("GET", "HEAD")
        and "Content-Encoding" not in request.headers
        and request.content_type == "application/x-www-form-urlencoded"
        and length is not None
        and 0 < length <= _BUFFER_LIMIT
    )


def _unreachable(error: BaseException) -> str:
    """Why a service could not be reached, without the URL (its query may hold a token)."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"unreachable (it answered something that is not HTTP: {error.message})"
    return f"unreachable ({error})"


def _form(request: Request, body: bytes) -> dict[str, str]:
    """The urlencoded parameters (first of each), or {} for any other or a malformed body.

    What ``parse_qsl(text, keep_blank_values=True, strict_parsing=True)`` returns, without its
    generality: every token request is parsed here, and most fields need no unquoting."""
    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    return _form_fields(body)


def _form_fields(body: bytes) -> dict[str, str]:
    """An urlencoded body's fields (first of each), or {} when it is malformed."""
    if not body:
        return {}
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return {}
    form: dict[str, str] = {}
    for field in text.split("&"):
        name, sep, value = field.partition("=")
        if not sep:  # strict parsing: a field without "=" (or an empty one) is malformed
            return {}
        if "%" in name or "+" in name:
            name = urllib.parse.unquote_plus(name, errors="replace")
        if "%" in value or "+" in value:
            value = urllib.parse.unquote_plus(value, errors="replace")
        form.setdefault(name, value)
    return form


def _bearer(request: web.BaseRequest | Request) -> str | None:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    raw = raw.strip()
    return raw if scheme.lower() == "bearer" and raw else None


def _carried_token(endpoint: str, request: Request, form: dict[str, str]) -> str | None:
    if endpoint in ("introspection", "revocation"):
        return form.get("token") or None
    if endpoint == "userinfo":
        return _bearer(request)
    if endpoint == "token" and form.get("grant_type") == "refresh_token":
        return form.get("refresh_token") or None
    return None


def _client_id(request: Request, form: dict[str, str]) -> str | None:
    """RFC 6749 §2.3.1: from Basic credentials, else the form."""
    header = request.headers.get("Authorization", "")
    if header:
        return _basic_client_id(header) or form.get("client_id")
    return form.get("client_id")


@functools.lru_cache(maxsize=256)
def _basic_client_id(header: str) -> str | None:
    """The client id of Basic credentials (cached: a client sends the same header each time)."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        client_id, sep, _ = decoded.partition(":")
        if sep:
            return urllib.parse.unquote_plus(client_id)
    return None


def _scope_field(value: object) -> frozenset[str] | None:
    if isinstance(value, str):
        return parse_scopes(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    return None


def _number(value: object, default: float) -> float:
    """A claim's number; ``default`` for anything else, also a JSON 1e400 (inf) or NaN."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _remint(claims: dict[str, Any], header: dict[str, Any], issue: Issue, key: SigningKey) -> str:
    """The upstream token's claims as the (possibly faulted) issue says, signed with ``key``."""
    minted = dict(claims)
    minted["iat"] = int(issue.issued_at)
    if "nbf" in claims or issue.not_before != issue.issued_at:
        minted["nbf"] = int(issue.not_before)
    minted["exp"] = int(issue.expires_at)
    if "scp" in claims and "scope" not in claims:
        minted["scp"] = sorted(issue.scopes)
    elif issue.scopes:
        minted["scope"] = format_scopes(issue.scopes)
    else:
        minted.pop("scope", None)  # RFC 6749 §3.3: no scopes, no scope claim
    if issue.drop_roles:
        for claim in _ROLE_CLAIMS:
            minted.pop(claim, None)
    return _resign_plain(minted, header, key)


def _resign_plain(claims: dict[str, Any], header: dict[str, Any], key: SigningKey) -> str:
    typ = header.get("typ")
    return sign_compact(claims, key, typ=typ if isinstance(typ, str) else None)
