"""The embedded OpenID Connect provider: an aiohttp application backed by the ledger and a clock.

Strict by default, like a production IdP should be: refresh tokens rotate and a reused one
revokes its whole family (RFC 6749 §10.4, OAuth 2.1 §4.3.1), authorization codes are single use
and need PKCE S256 (RFC 7636), refresh tokens are never access tokens. Every error is an
RFC 6749 §5.2 JSON body, never an HTML page and never a 500 for a client's mistake.

A non-standard ``ttl`` token-request parameter lets a test ask for a shorter-lived grant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import attrs
from aiohttp import web

from jitchaos._audit import AuditLog
from jitchaos._clock import Clock, SystemClock
from jitchaos._keys import KeyRing, SigningKey
from jitchaos._ledger import Ledger
from jitchaos._loop import BackgroundLoop
from jitchaos._records import (
    AuditSink,
    IssuedToken,
    KeyWithdrawn,
    Principal,
    TokenKind,
    TokenRecord,
    TokenStatus,
)
from jitchaos._tokens import (
    fingerprint,
    format_scopes,
    mint_access_token,
    mint_id_token,
    verify_access_token,
)
from jitchaos._wire import (
    NO_STORE,
    UNREADABLE_BODY,
    FormError,
    basic_credentials,
    bearer_token,
    form_fields,
    oauth_error,
    oauth_response,
    quiet_client_mistakes,
    single_values,
    unreadable_body,
)
from jitchaos.errors import AuditError, InvalidArgument, InvalidToken, LedgerError
from jitchaos.idp._config import ClientConfig, IdPConfig

__all__ = ["EmbeddedIdP"]

log = logging.getLogger("jitchaos.idp")

_T = TypeVar("_T")

_PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1
_TTL = re.compile(r"[1-9][0-9]{0,9}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class _OAuthError(Exception):
    """An RFC 6749 §5.2 error response, raised inside a handler."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> web.Response:
        return _error(self.error, self.description, self.status, self.headers)


def _error(
    error: str, description: str, status: int, headers: dict[str, str] | None = None
) -> web.Response:
    return oauth_response(error, description, status, headers)


def _invalid_client(description: str) -> _OAuthError:
    return _OAuthError(
        "invalid_client",
        description,
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="jitchaos"'},
    )


_HTTP_ERRORS = {404: "not_found", 405: "invalid_request", 413: "invalid_request"}


@web.middleware
async def _json_errors(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Every failure leaves as JSON: RFC 6749 errors, aiohttp's own HTTP errors, and bugs."""
    try:
        return await handler(request)
    except _OAuthError as error:
        return error.response()
    except UNREADABLE_BODY as error:  # a body the client garbled (bad Content-Encoding)
        return _error("invalid_request", unreadable_body(error), 400)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error(
            _HTTP_ERRORS.get(error.status, "invalid_request"),
            f"{request.method} {request.path}: {error.reason}",
            error.status,
            {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None,
        )
    except Exception:
        log.exception("internal error in %s %s", request.method, request.path)
        return _error("server_error", "internal error in the embedded IdP", 500)


@attrs.define
class _PendingCode:
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    user: str
    scopes: frozenset[str]
    challenge: str
    nonce: str | None
    expires_at: float
    grant_id: str | None = None  # set once redeemed: a second redemption revokes this grant


class EmbeddedIdP:
    """A real OpenID Connect provider that runs in-process, backed by a :class:`Ledger`.

    ``clock`` defaults to the wall clock; tests pass a :class:`~jitchaos.ManualClock` and move
    it. ``audit`` is a path (an :class:`~jitchaos.AuditLog` is opened there) or any sink.
    ``issuer`` defaults to the URL the IdP is served at.
    """

    def __init__(
        self,
        config: IdPConfig,
        *,
        clock: Clock | None = None,
        keys: KeyRing | None = None,
        audit: str | os.PathLike[str] | AuditSink | None = None,
        issuer: str | None = None,
    ) -> None:
        if not isinstance(config, IdPConfig):
            raise InvalidArgument(f"config={config!r} must be an IdPConfig")
        if keys is not None and not isinstance(keys, KeyRing):
            raise InvalidArgument(f"keys={keys!r} must be a KeyRing")
        if issuer is not None and (
            not isinstance(issuer, str) or not issuer.startswith(("http://", "https://"))
        ):
            raise InvalidArgument(f"issuer={issuer!r} must be an http(s) URL")
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.keys = keys if keys is not None else KeyRing(config.algorithm)
        sink = AuditLog(audit) if isinstance(audit, str | os.PathLike) else audit
        self.ledger = Ledger(self.clock, audit=sink)
        self._issuer = issuer
        self._url: str | None = None
        self._codes: dict[str, _PendingCode] = {}
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None

    # Where it is.

    @property
    def issuer(self) -> str:
        """The ``iss`` of every token (and the discovery base)."""
        if self._issuer is None:
            raise RuntimeError("the IdP has no issuer yet: start() it or pass issuer=")
        return self._issuer

    @property
    def url(self) -> str:
        """The base URL it is served at."""
        if self._url is None:
            raise RuntimeError("the IdP is not being served: call start() first")
        return self._url

    @property
    def discovery_url(self) -> str:
        """Where its OpenID Provider Metadata is served."""
        return f"{self.issuer}/.well-known/openid-configuration"

    # Serving.

    def app(self) -> web.Application:
        """The aiohttp application (built once)."""
        if self._app is None:
            app = web.Application(middlewares=[_json_errors], client_max_size=64 * 1024)
            for path in (
                "/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server",
            ):
                app.router.add_get(path, self._discovery)
            app.router.add_get("/jwks", self._jwks)
            app.router.add_get("/authorize", self._authorize)
            app.router.add_post("/token", self._token)
            app.router.add_post("/introspect", self._introspect)
            app.router.add_post("/revoke", self._revoke)
            app.router.add_route("GET", "/userinfo", self._userinfo)
            app.router.add_route("POST", "/userinfo", self._userinfo)
            self._app = app
        return self._app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Serve on ``host:port`` (port 0 picks a free one; over TLS with ``ssl_context``) and
        return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the IdP is already being served")
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            logger=quiet_client_mistakes("jitchaos.idp.server"),
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if ssl_context is not None else "http"
        self._url = f"{scheme}://{shown}:{bound_port}"
        if self._issuer is None:
            self._issuer = self._url
        return self._url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextmanager
    def in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[EmbeddedIdP]:
        """Serve on a background event loop for the length of the block (for sync callers)."""
        with BackgroundLoop(name="jitchaos-idp") as loop:
            loop.run(self.start(host, port))
            try:
                yield self
            finally:
                loop.run(self.stop())

    # Administration (what an operator does to the world; each change is a ledger event).

    def rotate_keys(self, *, ahead: float = 0.0) -> SigningKey:
        """Publish a new key and sign with it ``ahead`` seconds from now (at once by default);
        earlier keys stay published."""
        key = self.keys.new_key()
        # Recorded first: a key that signs is always one the ledger knows.
        event = self.ledger.publish_key(key.kid, ahead=ahead)
        if ahead:
            self.keys.publish(event.signs_from, key=key)
        else:
            self.keys.rotate(key=key)
        return key

    def remove_key(self, kid: str) -> KeyWithdrawn:
        """Withdraw key ``kid``: it leaves the JWKS and every token it signed stops verifying."""
        key = self.keys.get(kid)
        if key is None or key is self.keys.signing_key(self.clock.now()):
            self.keys.remove(kid)  # raises the precise InvalidArgument
        withdrawn = self.ledger.withdraw_key(kid, reason=f"signing key {kid} removed")
        self.keys.remove(kid)
        return withdrawn

    # Endpoints.

    def _metadata(self) -> dict[str, Any]:
        base = self.issuer
        scopes = {"openid"} | {s for c in self.config.clients for s in c.scopes}
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "introspection_endpoint": f"{base}/introspect",
            "revocation_endpoint": f"{base}/revoke",
            "userinfo_endpoint": f"{base}/userinfo",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.keys.algorithm],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(scopes),
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "scope",
                "client_id",
            ],
        }

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(self._metadata())

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self.keys.jwks())

    async def _authorize(self, request: web.Request) -> web.Response:
        """RFC 6749 §4.1.1 with PKCE; approved at once for the user ``login_hint`` names."""
        params = _single_values(list(request.query.items()))
        now = self.clock.now()
        self._codes = {c: p for c, p in self._codes.items() if p.expires_at > now}
        client = self.config.client(params.get("client_id", ""))
        if client is None:
            raise _OAuthError(
                "invalid_request", f"client_id={params.get('client_id')!r} names no client"
            )
        redirect_uri = params.get("redirect_uri")
        target = self._redirect_target(client, redirect_uri)

        def refuse(error: str, description: str) -> NoReturn:
            query = oauth_error(error, description)
            if "state" in params:
                query["state"] = params["state"]
            raise web.HTTPFound(_with_query(target, query))

        if params.get("response_type") != "code":
            refuse("unsupported_response_type", "only response_type=code is supported")
        challenge = params.get("code_challenge")
        if not challenge:
            refuse("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
        if params.get("code_challenge_method") != "S256":
            refuse("invalid_request", "code_challenge_method must be S256")
        user = (
            self.config.user(params["login_hint"])
            if "login_hint" in params
            else (self.config.users[0] if len(self.config.users) == 1 else None)
        )
        if user is None:
            refuse(
                "login_required",
                f"login_hint={params.get('login_hint')!r} names no configured user",
            )
        allowed = (client.scopes & user.scopes) | {"openid"}
        requested = _requested_scopes(params.get("scope"), default=allowed)
        if not requested <= allowed:
            refuse(
                "invalid_scope",
                f"scopes {sorted(requested - allowed)!r} are not "
                f"allowed for {user.name} through {client.client_id}",
            )
        code = secrets.token_urlsafe(32)
        self._codes[code] = _PendingCode(
            client_id=client.client_id,
            redirect_uri=target,
            redirect_uri_given=redirect_uri is not None,
            user=user.name,
            scopes=requested,
            challenge=challenge,
            nonce=params.get("nonce"),
            expires_at=now + self.config.code_ttl,
        )
        query = {"code": code}
        if "state" in params:
            query["state"] = params["state"]
        raise web.HTTPFound(_with_query(target, query))

    def _redirect_target(self, client: ClientConfig, redirect_uri: str | None) -> str:
        # Errors about the client or the redirect URI are never redirected (RFC 6749 §4.1.2.1).
        if redirect_uri is None:
            if len(client.redirect_uris) == 1:
                return client.redirect_uris[0]
            raise _OAuthError("invalid_request", "redirect_uri is required")
        if client.redirect_uris:
            if redirect_uri not in client.redirect_uris:
                raise _OAuthError(
                    "invalid_request", f"redirect_uri={redirect_uri!r} is not registered"
                )
            return redirect_uri
        if not _is_loopback_http(redirect_uri):
            raise _OAuthError(
                "invalid_request",
                f"redirect_uri={redirect_uri!r} is not a loopback http URI (RFC 8252 §7.3)",
            )
        return redirect_uri

    async def _token(self, request: web.Request) -> web.Response:
        form = await _form(request)
        client = self._authenticate(request, form, allow_public=True)
        grant_type = form.get("grant_type")
        handlers = {
            "client_credentials": self._client_credentials,
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
        }
        if grant_type is None:
            raise _OAuthError("invalid_request", "grant_type is required")
        if grant_type not in handlers:
            raise _OAuthError(
                "unsupported_grant_type", f"grant_type={grant_type!r} is not supported"
            )
        ttl = self._ttl(form.get("ttl"))
        payload = handlers[grant_type](client, form, ttl)
        return web.json_response(payload, headers=NO_STORE)

    def _ttl(self, raw: str | None) -> int:
        if raw is None:
            return int(self.config.access_ttl)
        if not _TTL.fullmatch(raw) or int(raw) > self.config.max_ttl:
            raise _OAuthError(
                "invalid_request",
                f"ttl={raw!r} must be a whole number of seconds from 1 to {self.config.max_ttl:g}",
            )
        return int(raw)

    def _client_credentials(
        self, client: ClientConfig, form: dict[str, str], ttl: int
    ) -> dict[str, Any]:
        if client.public:
            raise _OAuthError(
                "unauthorized_client", "a public client cannot use client_credentials"
            )
        scopes = _requested_scopes(form.get("scope"), default=client.scopes)
        if not scopes <= client.scopes:
            raise _OAuthError(
                "invalid_scope",
                f"scopes {sorted(scopes - client.scopes)!r} are "
                f"not allowed for client {client.client_id}",
            )
        info, payload = self._mint_access(Principal.client(client.client_id), client, scopes, ttl)
        self._record(
            lambda: self.ledger.grant(
                principal=Principal.client(client.client_id),
                client_id=client.client_id,
                scopes=scopes,
                tokens=[info],
            )
        )
        return payload

    def _authorization_code(
        self, client: ClientConfig, form: dict[str, str], ttl: int
    ) -> dict[str, Any]:
        code = form.get("code")
        if not code:
            raise _OAuthError("invalid_request", "code is required")
        pending = self._codes.get(code)
        now = self.clock.now()
        if pending is None or pending.expires_at <= now:
            raise _OAuthError("invalid_grant", "the authorization code is unknown or expired")
        if pending.client_id != client.client_id:
            raise _OAuthError(
                "invalid_grant", "the authorization code was issued to another client"
            )
        if pending.grant_id is not None:
            # RFC 6749 §4.1.2: a code used twice revokes what it already granted.
            self._record(
                lambda: self.ledger.revoke(
                    grant=str(pending.grant_id), reason="authorization code reused"
                )
            )
            raise _OAuthError(
                "invalid_grant", "the authorization code was already used; its grant is revoked"
            )
        if pending.redirect_uri_given and form.get("redirect_uri") != pending.redirect_uri:
            raise _OAuthError(
                "invalid_grant", "redirect_uri does not match the authorization request"
            )
        verifier = form.get("code_verifier")
        if verifier is None or not _PKCE_VERIFIER.fullmatch(verifier):
            raise _OAuthError(
                "invalid_grant", "code_verifier is missing or malformed (RFC 7636 §4.1)"
            )
        if not hmac.compare_digest(_s256(verifier), pending.challenge.encode()):
            raise _OAuthError("invalid_grant", "code_verifier does not match code_challenge")
        principal = Principal.subject(pending.user)
        info, payload = self._mint_access(principal, client, pending.scopes, ttl)
        refresh, refresh_info = self._mint_refresh(pending.scopes)
        if "openid" in pending.scopes:
            payload["id_token"] = self._mint_id_token(principal, client, pending.nonce)
        granted = self._record(
            lambda: self.ledger.grant(
                principal=principal,
                client_id=client.client_id,
                scopes=pending.scopes,
                tokens=[info, refresh_info],
            )
        )
        pending.grant_id = granted.grant_id
        payload["refresh_token"] = refresh
        return payload

    def _refresh_token(
        self, client: ClientConfig, form: dict[str, str], ttl: int
    ) -> dict[str, Any]:
        raw = form.get("refresh_token")
        if not raw:
            raise _OAuthError("invalid_request", "refresh_token is required")
        fp = fingerprint(raw)
        record = self.ledger.lookup(fp)
        if record is None or record.token.kind is not TokenKind.REFRESH:
            raise _OAuthError(
                "invalid_grant", "refresh_token is not a refresh token this IdP issued"
            )
        if record.client_id != client.client_id:
            raise _OAuthError("invalid_grant", "the refresh token was issued to another client")
        status = record.status(self.clock.now())
        if status is TokenStatus.SPENT:
            # Reuse of a rotated refresh token: assume it was stolen and end the family.
            self._record(
                lambda: self.ledger.revoke(grant=record.grant_id, reason="refresh token reused")
            )
            raise _OAuthError(
                "invalid_grant", "the refresh token was already used; its whole family is revoked"
            )
        if status is not TokenStatus.ACTIVE:
            raise _OAuthError("invalid_grant", f"the refresh token is {status.value}")
        granted = self.ledger.get_grant(record.grant_id).scopes & record.token.scopes
        scopes = _requested_scopes(form.get("scope"), default=granted)
        if not scopes <= granted:
            raise _OAuthError(
                "invalid_scope",
                f"scopes {sorted(scopes - granted)!r} exceed the grant (RFC 6749 §6)",
            )
        info, payload = self._mint_access(record.principal, client, scopes, ttl)
        refresh, refresh_info = self._mint_refresh(granted)
        self._record(lambda: self.ledger.refresh(fp, tokens=[info, refresh_info]))
        payload["refresh_token"] = refresh
        return payload

    async def _introspect(self, request: web.Request) -> web.Response:
        """RFC 7662; an inactive token answers only ``{"active": false}`` (§2.2)."""
        form = await _form(request)
        self._authenticate(request, form, allow_public=False)
        raw = form.get("token")
        if not raw:
            raise _OAuthError("invalid_request", "token is required")
        _check_hint(form.get("token_type_hint"))
        record = self.ledger.lookup(fingerprint(raw))
        now = self.clock.now()
        if (
            record is None
            or record.status(now) is not TokenStatus.ACTIVE
            or (record.token.kid is not None and self.keys.get(record.token.kid) is None)
        ):
            return web.json_response({"active": False}, headers=NO_STORE)
        return web.json_response(self._introspection(record, now), headers=NO_STORE)

    def _introspection(self, record: TokenRecord, now: float) -> dict[str, Any]:
        grant = self.ledger.get_grant(record.grant_id)
        token = record.token
        body: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer" if token.kind is TokenKind.ACCESS else "refresh_token",
            "scope": format_scopes(token.scopes & grant.scopes_at(now)),
            "client_id": record.client_id,
            "sub": record.principal.name,
            "iss": self.issuer,
            "iat": int(token.issued_at),
            "nbf": int(token.issued_at),
            "exp": int(token.expires_at),
        }
        if token.kind is TokenKind.ACCESS:
            body["aud"] = self.config.audience
        return body

    async def _revoke(self, request: web.Request) -> web.Response:
        """RFC 7009: 200 for unknown and already-revoked tokens; a refresh token takes its
        grant's access tokens with it (§2.1)."""
        form = await _form(request)
        client = self._authenticate(request, form, allow_public=True)
        raw = form.get("token")
        if not raw:
            raise _OAuthError("invalid_request", "token is required")
        _check_hint(form.get("token_type_hint"))
        fp = fingerprint(raw)
        record = self.ledger.lookup(fp)
        if record is not None:
            if record.client_id != client.client_id:
                raise _OAuthError(
                    "unauthorized_client", "the token was issued to another client (RFC 7009 §2.1)"
                )
            if record.token.kind is TokenKind.REFRESH:
                self._record(
                    lambda: self.ledger.revoke(
                        grant=record.grant_id, reason="refresh token revoked by its client"
                    )
                )
            else:
                self._record(
                    lambda: self.ledger.revoke(
                        token=fp, reason="access token revoked by its client"
                    )
                )
        return web.json_response({}, headers=NO_STORE)

    async def _userinfo(self, request: web.Request) -> web.Response:
        """OpenID Connect Core §5.3, bearer token in the Authorization header (RFC 6750 §2.1)."""
        raw = bearer_token(request.headers.get("Authorization", ""))
        if raw is None:
            return _error(
                "invalid_request",
                "a Bearer access token is required",
                401,
                {"WWW-Authenticate": 'Bearer realm="jitchaos"'},
            )
        now = self.clock.now()

        def invalid(description: str) -> web.Response:
            quoted = oauth_error("invalid_token", description)["error_description"]
            return _error(
                "invalid_token",
                description,
                401,
                {
                    "WWW-Authenticate": f'Bearer error="invalid_token", '
                    f'error_description="{quoted}"'
                },
            )

        if not self.config.opaque_tokens:
            try:
                verify_access_token(
                    raw, self.keys, issuer=self.issuer, audience=self.config.audience, now=now
                )
            except InvalidToken as error:
                return invalid(str(error))
        record = self.ledger.lookup(fingerprint(raw))
        if (
            record is None
            or record.token.kind is not TokenKind.ACCESS
            or record.status(now) is not TokenStatus.ACTIVE
        ):
            return invalid("the access token is not active")
        scopes = record.token.scopes & self.ledger.get_grant(record.grant_id).scopes_at(now)
        if "openid" not in scopes:
            return _error(
                "insufficient_scope",
                "userinfo needs the openid scope",
                403,
                {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"'},
            )
        return web.json_response(
            {
                "sub": record.principal.name,
                "preferred_username": record.principal.name,
                "scope": format_scopes(scopes),
            },
            headers=NO_STORE,
        )

    # Helpers of the endpoints.

    def _authenticate(
        self, request: web.Request, form: dict[str, str], *, allow_public: bool
    ) -> ClientConfig:
        """RFC 6749 §2.3: client_secret_basic, client_secret_post, or a public client_id."""
        header = request.headers.get("Authorization")
        if header is not None:
            try:
                given = basic_credentials(header)
            except ValueError as error:
                raise _invalid_client(str(error)) from None
            if given is None:
                scheme = header.partition(" ")[0]
                raise _invalid_client(f"unsupported authentication scheme {scheme!r}")
            if "client_secret" in form:
                raise _OAuthError(
                    "invalid_request",
                    "use one client authentication method, not Basic and client_secret together",
                )
            client_id, secret = given
            if "client_id" in form and form["client_id"] != client_id:
                raise _OAuthError(
                    "invalid_request", "client_id differs from the Basic credentials"
                )
            return self._check_secret(client_id, secret)
        if "client_secret" in form:
            return self._check_secret(form.get("client_id", ""), form["client_secret"])
        client = self.config.client(form.get("client_id", ""))
        if client is None:
            raise _invalid_client("unknown client or no client authentication")
        if not client.public:
            raise _invalid_client(f"client {client.client_id} must authenticate")
        if not allow_public:
            raise _invalid_client("a public client may not use this endpoint")
        return client

    def _check_secret(self, client_id: str, secret: str) -> ClientConfig:
        client = self.config.client(client_id)
        if (
            client is None
            or client.secret is None
            or not hmac.compare_digest(
                client.secret.encode(), secret.encode("utf-8", "surrogatepass")
            )
        ):
            raise _invalid_client("client authentication failed")
        return client

    def _mint_access(
        self, principal: Principal, client: ClientConfig, scopes: frozenset[str], ttl: int
    ) -> tuple[IssuedToken, dict[str, Any]]:
        now = int(self.clock.now())
        key = self.keys.signing_key(self.clock.now())
        if self.config.opaque_tokens:
            token = secrets.token_urlsafe(32)
        else:
            token = mint_access_token(
                key,
                issuer=self.issuer,
                audience=self.config.audience,
                subject=principal.name,
                client_id=client.client_id,
                scopes=scopes,
                issued_at=now,
                expires_at=now + ttl,
            )
        info = IssuedToken(
            fingerprint=fingerprint(token),
            kind=TokenKind.ACCESS,
            issued_at=now,
            expires_at=now + ttl,
            scopes=scopes,
            kid=None if self.config.opaque_tokens else key.kid,
        )
        payload = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": format_scopes(scopes),
        }
        return info, payload

    def _mint_refresh(self, scopes: frozenset[str]) -> tuple[str, IssuedToken]:
        now = int(self.clock.now())
        token = secrets.token_urlsafe(32)
        return token, IssuedToken(
            fingerprint=fingerprint(token),
            kind=TokenKind.REFRESH,
            issued_at=now,
            expires_at=now + self.config.refresh_ttl,
            scopes=scopes,
        )

    def _mint_id_token(self, principal: Principal, client: ClientConfig, nonce: str | None) -> str:
        now = int(self.clock.now())
        return mint_id_token(
            self.keys.signing_key(self.clock.now()),
            issuer=self.issuer,
            client_id=client.client_id,
            subject=principal.name,
            issued_at=now,
            expires_at=now + int(self.config.access_ttl),
            nonce=nonce,
        )

    def _record(self, change: Callable[[], _T]) -> _T:
        """Apply a ledger change; a failed audit write refuses the request (fail closed)."""
        try:
            return change()
        except AuditError as error:
            log.error("audit write failed, request refused: %s", error)
            raise _OAuthError(
                "temporarily_unavailable",
                f"the audit log cannot be written, so nothing was granted or "
                f"changed: {error.strerror or error}",
                status=503,
            ) from None
        except LedgerError as error:  # the state changed under the request
            raise _OAuthError("invalid_grant", str(error)) from None


async def _form(request: web.Request) -> dict[str, str]:
    """The urlencoded body, each parameter at most once (RFC 6749 §3.1), read by the rule the
    proxy reads it by (:func:`jitchaos._wire.form_fields`)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise _OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        return form_fields(await request.read())
    except FormError as error:
        raise _OAuthError("invalid_request", str(error)) from None


def _single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    try:
        return single_values(pairs)
    except FormError as error:
        raise _OAuthError("invalid_request", str(error)) from None


def _requested_scopes(raw: str | None, *, default: frozenset[str]) -> frozenset[str]:
    if raw is None or not raw.strip(" "):
        return default
    scopes = raw.split(" ")
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise _OAuthError(
                "invalid_scope", f"scope={raw!r} is not a space-separated list of scope tokens"
            )
    return frozenset(scopes)


def _check_hint(hint: str | None) -> None:
    if hint is not None and hint not in ("access_token", "refresh_token"):
        raise _OAuthError(
            "unsupported_token_type",
            f"token_type_hint={hint!r} is not access_token or refresh_token",
        )


def _s256(verifier: str) -> bytes:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def _is_loopback_http(uri: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme != "http" or host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), *params.items()])
    return urllib.parse.urlunsplit(parts._replace(query=query))
