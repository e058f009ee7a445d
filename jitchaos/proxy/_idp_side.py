"""The proxy's IdP side: services and clients reach their IdP through it.

It forwards to the embedded or a real upstream IdP, rewrites discovery so every endpoint is
reached through the proxy, keeps the ledger in step with the tokens it sees issued, refreshed
and revoked, and lets the schedule's faults act on that traffic. With the signing keys (the
embedded IdP's, or its own in re-signing mode) it can change what a token says; in re-signing
mode it verifies every upstream JWT against the upstream JWKS and re-mints it with its own key,
serving its own JWKS. Opaque tokens are read through upstream introspection and changed through
the introspection answers it relays.

Served by the proxy's own HTTP/1.1 layer (``_server.py``, ``_client.py``): see docs/design.md.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jwt
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from jitchaos._keys import KeyRing, SigningKey
from jitchaos._records import IssuedToken, Principal, TokenKind, TokenRecord, TokenStatus
from jitchaos._tokens import fingerprint, format_scopes, parse_scopes
from jitchaos._wire import (
    NO_STORE,
    FormError,
    basic_credentials,
    bearer_token,
    form_fields,
    oauth_response,
)
from jitchaos.errors import InvalidArgument, LedgerError
from jitchaos.faults import Answer, Exchange, Issue
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy._client import ConnectFailed, HttpClient, ProtocolFailed
from jitchaos.proxy._engine import FaultEngine
from jitchaos.proxy._http import HOP_BY_HOP, foreign_target, request_headers
from jitchaos.proxy._jose import CompactJWS, parse_compact, sign_compact, verify_signature
from jitchaos.proxy._metrics import Metrics
from jitchaos.proxy._server import LeanServer, Reply, Request
from jitchaos.proxy._upstream import (
    DISCOVERY_PATHS,
    ENDPOINT_PATHS,
    ForeignEndpoint,
    Forwarded,
    UpstreamError,
    UpstreamIdP,
    upstream_error_answer,
)
from jitchaos.proxy._world import ProxyWorld

__all__ = ["IDP_BODY_LIMIT", "IdPSide", "idp_refusal"]

log = logging.getLogger("jitchaos.proxy")

# A token answer's own fields (RFC 6749 §5.1), replacing the upstream's.
_TOKEN_FIELDS = [*NO_STORE.items(), ("Content-Type", "application/json")]
_TOKEN_OWN_FIELDS = frozenset(name.lower() for name, _ in _TOKEN_FIELDS)
_ROLE_CLAIMS = ("roles", "groups", "realm_access", "resource_access", "permissions")
_POST_ONLY = frozenset({"token", "introspection", "revocation"})
_REMEMBER_EXPIRED = 3600.0  # seconds a re-minted token's upstream original outlives its exp
_REFRESH_HORIZON = 30 * 86400  # when the upstream says nothing about refresh-token lifetime


class IdPSide:
    """The IdP side's handler and what it remembers: where the upstream is, which upstream
    token each re-minted one stands for. ``own_keys`` are the re-signing keys (None: tokens
    pass as the upstream signed them, unless faults change them with the embedded IdP's)."""

    def __init__(
        self,
        world: ProxyWorld,
        engine: FaultEngine,
        metrics: Metrics,
        *,
        own_keys: KeyRing | None,
        embedded: Callable[[], EmbeddedIdP | None],
        reuse_detection: bool,
        upstream_timeout: float,
    ) -> None:
        self.world = world
        self.clock = world.clock
        self.ledger = world.ledger
        self.engine = engine
        self.metrics = metrics
        self._own_keys = own_keys
        self.resign = own_keys is not None
        self.reuse_detection = reuse_detection
        self._upstream_timeout = upstream_timeout
        self._embedded = embedded  # the embedded upstream, whose keys the proxy holds, if any
        self._upstream: UpstreamIdP | None = None
        self._client: HttpClient | None = None
        self._upstream_token: dict[str, str] = {}  # re-minted fingerprint -> upstream token
        self._upstream_token_expiry: list[tuple[float, str]] = []  # heap: (forget at, fingerprint)
        self._endpoints = {path: name for path, name in ENDPOINT_PATHS.values()}
        self._idp_jwks: dict[str, tuple[SigningKey, jwt.PyJWK]] = {}

    def connect(self, upstream: UpstreamIdP, ca_context: ssl.SSLContext | None) -> None:
        """Reach ``upstream`` from now on."""
        self._upstream = upstream
        self._client = HttpClient(timeout=self._upstream_timeout, ssl_context=ca_context)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def server(self) -> LeanServer:
        """The IdP side's HTTP/1.1 server (not started)."""
        return LeanServer(self.handler(), client_max_size=IDP_BODY_LIMIT, refusal=idp_refusal)

    def handler(self) -> Callable[[Request], Awaitable[web.Response | Reply]]:
        discovery = frozenset(DISCOVERY_PATHS)
        post_only = frozenset(path for path, name in self._endpoints.items() if name in _POST_ONLY)

        async def handle(request: Request) -> web.Response | Reply:
            refused = foreign_target(request)
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
        # The path as written and as it would be forwarded (yarl resolves dot segments and
        # re-encodes what is not UTF-8): routing either to an endpoint errs on the side of the
        # endpoint's handling.
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
            answer = await self._forward("OPTIONS", target, request_headers(request), b"")
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
        try:
            form = _form(request, body)
        except FormError as error:
            if endpoint in _POST_ONLY:
                # As the embedded IdP refuses it: which of two values would the upstream take?
                return _oauth_error("invalid_request", str(error))
            form = {}  # not read by the proxy: the upstream decides
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
            answer_ = await self._forward(request.method, target, request_headers(request), body)
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
        if spent is not None and self.world.refused(spent, now, refresh=True):
            return _oauth_error(
                "invalid_grant", f"the refresh token is {spent.status(now).value} (jitchaos)"
            )
        answer = await self._forward("POST", target, request_headers(request), body)
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
        info: dict[str, Any] = claims or await self._introspect_upstream(raw, request, form) or {}
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
        signer = self.world.keys()
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
        idp = self._embedded()
        if idp is not None and isinstance(kid, str):
            key = self._idp_key(idp, kid)
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

    def _idp_key(self, idp: EmbeddedIdP, kid: str) -> jwt.PyJWK | None:
        signing = idp.keys.get(kid)
        if signing is None:
            return None
        cached = self._idp_jwks.get(kid)
        if cached is None or cached[0] is not signing:  # a rekeyed kid is a new key
            cached = (signing, jwt.PyJWK(signing.public_jwk()))
            self._idp_jwks[kid] = cached
        return cached[1]

    async def _introspect_upstream(
        self, token: str, request: Request, form: dict[str, str]
    ) -> dict[str, Any] | None:
        """RFC 7662 on an opaque upstream token, with the credentials of the client whose token
        request (``form``, read once by the handler) it answers."""
        upstream = self._require_upstream()
        target = upstream.endpoints.get("introspection_endpoint")
        if target is None:
            return None
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
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
        answer, record = await self._about_token(request, target, body, form)
        data = answer.json_object() if answer.status == 200 else None
        if data is None or record is None:
            return _relay(answer)
        now = self.clock.now()
        if self.world.refused(record, now):
            return web.json_response({"active": False}, headers=NO_STORE)  # RFC 7662 §2.2
        if data.get("active") is True:
            grant = self.ledger.get_grant(record.grant_id)
            data["exp"] = int(record.token.expires_at)
            data["scope"] = format_scopes(record.token.scopes & grant.scopes_at(now))
            if grant.scopes_at(now) < grant.scope_history[0][1]:
                for claim in _ROLE_CLAIMS:
                    data.pop(claim, None)
        return web.json_response(data, headers=NO_STORE)

    async def _revocation(
        self, request: Request, target: URL, body: bytes, form: dict[str, str]
    ) -> web.Response | Reply:
        answer, record = await self._about_token(request, target, body, form)
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
        headers = request_headers(request)
        raw = bearer_token(request.headers.get("Authorization", ""))
        if raw is not None:
            record = self.ledger.lookup(fingerprint(raw))
            if record is not None and self.world.refused(record, self.clock.now()):
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

    async def _about_token(
        self, request: Request, target: URL, body: bytes, form: dict[str, str]
    ) -> tuple[Forwarded, TokenRecord | None]:
        """An introspection or revocation request forwarded with the upstream's own token in
        place of a re-minted one; its answer, and the ledger's record of the token asked about."""
        raw = form.get("token")
        answer = await self._forward(
            "POST", target, request_headers(request), self._upstream_form(body, form)
        )
        return answer, self.ledger.lookup(fingerprint(raw)) if raw else None

    def _upstream_form(self, body: bytes, form: dict[str, str]) -> bytes:
        """The body with a re-minted token swapped back for the upstream's own."""
        raw = form.get("token")
        original = self._upstream_token.get(fingerprint(raw)) if raw else None
        if original is None:
            return body
        return urllib.parse.urlencode({**form, "token": original}).encode()

    async def discover(self) -> None:
        """Fetch the upstream's discovery now (at start-up), so that endpoints on an origin the
        proxy was not given refuse the start (:class:`ForeignEndpoint`); an upstream that does
        not answer yet is discovered on first use instead."""
        upstream = self._require_upstream()
        try:
            await upstream.ensure_discovered(self._forward)
        except ForeignEndpoint:
            raise
        except UpstreamError:
            return

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
            if (lowered := name.lower()) not in HOP_BY_HOP and lowered != "content-encoding"
        )
        return Forwarded(answer.status, kept, answer.body)


IDP_BODY_LIMIT = 256 * 1024
"""Token, introspection and revocation requests are small; anything larger is refused."""


def idp_refusal(status: int, why: str) -> web.Response:
    """What the IdP side's server answers to a request it refuses itself: OAuth clients read
    JSON errors (RFC 6749 §5.2), not a server's text/plain."""
    return _oauth_error("server_error" if status >= 500 else "invalid_request", why, status)


def _not_allowed(request: Request, allow: str) -> web.Response:
    refusal = idp_refusal(
        405, f"{request.method} {request.path[:100]}: this endpoint answers {allow} only"
    )
    refusal.headers["Allow"] = allow
    return refusal


def _gateway_error(error: UpstreamError) -> web.Response:
    return web.json_response(upstream_error_answer(error), status=error.status, headers=NO_STORE)


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return oauth_response(error, description, status)


def _fault_response(answer: Answer) -> web.Response:
    return web.Response(
        status=answer.status,
        body=answer.body,
        content_type=answer.content_type,
        headers=NO_STORE,
    )


def _relay(answer: Forwarded) -> Reply:
    return Reply(answer.status, answer.headers, answer.body)


def _form(request: Request, body: bytes) -> dict[str, str]:
    """The OAuth parameters of an urlencoded body, read by the embedded IdP's rule (each at
    most once), so that the ledger never reads a request differently from a strict IdP; {} for
    a body of another type. Raises :class:`FormError` for one that is malformed."""
    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    return form_fields(body)


def _carried_token(endpoint: str, request: Request, form: dict[str, str]) -> str | None:
    if endpoint in ("introspection", "revocation"):
        return form.get("token") or None
    if endpoint == "userinfo":
        return bearer_token(request.headers.get("Authorization", ""))
    if endpoint == "token" and form.get("grant_type") == "refresh_token":
        return form.get("refresh_token") or None
    return None


def _client_id(request: Request, form: dict[str, str]) -> str | None:
    """RFC 6749 §2.3.1: from Basic credentials, else the form."""
    header = request.headers.get("Authorization", "")
    if header:
        try:
            given = basic_credentials(header)
        except ValueError:
            given = None
        if given is not None:
            return given[0]
    return form.get("client_id")


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
