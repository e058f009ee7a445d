"""Just-in-time credentials for tests: ask for a short-lived, scoped credential when you need
it, give it back when you are done, and leave an audit trail that proves you did.

The broker obtains real tokens from the embedded IdP, from the proxy's IdP side, or from a real
IdP (client_credentials, as any of its configured clients, bound to a resource with RFC 8707
when asked), records each as a grant and a lease in its own ledger (and audit log) before
handing it out, and revokes through the IdP's RFC 7009 endpoint. If the audit record cannot be
written, the credential is revoked again and not handed out: no audit, no grant.

What is recorded is what happened: a token lives as long as the token says (its ``exp``, else
``expires_in``, else introspection), whatever was asked; a credential given back is a
:class:`~jitchaos.Returned` event, by its holder or by the fixture that had to take it back;
and an IdP that refuses to revoke a token type (RFC 7009 §2.2.1: JWT-issuing IdPs do) ends the
lease cleanly, the token recorded as valid until it expires. Tokens and secrets are carried as
:class:`~jitchaos.Secret` values, which never show in a traceback.
"""

from __future__ import annotations

import base64
import json
import math
import os
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
import jwt

from jitchaos._audit import AuditLog
from jitchaos._checks import finite_number, scope_names
from jitchaos._clock import Clock, SystemClock, instant
from jitchaos._ledger import Ledger
from jitchaos._oauth_client import authorization_query, code_from, exchange
from jitchaos._records import AuditSink, IssuedToken, Principal, PrincipalKind, TokenKind
from jitchaos._tokens import Secret, fingerprint, format_scopes, parse_scopes
from jitchaos.errors import AuditError, BrokerError, InvalidArgument

if TYPE_CHECKING:
    from jitchaos.idp import EmbeddedIdP
    from jitchaos.proxy import ChaosProxy

__all__ = ["Broker", "Credential"]

_REDIRECT = "http://127.0.0.1/jitchaos-broker"


@attrs.frozen(kw_only=True)
class Credential:
    """A short-lived credential a test holds. Its repr shows the fingerprint, never the token."""

    access_token: Secret = attrs.field(repr=False)
    refresh_token: Secret | None = attrs.field(default=None, repr=False)
    fingerprint: str
    """Fingerprint of the access token (what logs, audits and notebooks show)."""
    expires_at: float
    """When the token stops working, as the token (or the IdP) says, whatever was asked."""
    scopes: frozenset[str]
    principal: Principal
    grant_id: str
    holder: str
    resource: str | None = None
    """The RFC 8707 resource the token was bound to, when the lease named one."""
    lifetime_from: str = "exp"
    """Where :attr:`expires_at` comes from: ``exp`` (the JWT), ``expires_in`` (the token
    answer), ``introspection``, or ``asked`` (the IdP said nothing)."""

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for an HTTP client (the value a
        :class:`~jitchaos.Secret`: an assertion on it shows no token)."""
        return {"Authorization": Secret(f"Bearer {self.access_token}")}


class Broker:
    """Grants credentials from ``source`` as client ``client_id``/``client_secret`` (or any of
    ``clients``, id to secret) to ``holder`` (a test id), each capped at ``max_ttl`` seconds of
    total life when given.

    ``source`` is an :class:`~jitchaos.idp.EmbeddedIdP`, a :class:`~jitchaos.ChaosProxy` (its
    IdP side) or a real IdP's issuer URL. Grants to users (``subject:NAME``) need the embedded
    IdP (through a proxy or not); a real IdP grants the client itself (client_credentials).
    ``audit`` is a path or sink for the broker's ledger. As a context manager, the broker
    revokes everything it granted on exit, also when the body raises.
    """

    def __init__(
        self,
        source: EmbeddedIdP | ChaosProxy | str,
        *,
        client_id: str,
        client_secret: str,
        holder: str = "broker",
        clock: Clock | None = None,
        audit: str | os.PathLike[str] | AuditSink | None = None,
        max_ttl: float | None = None,
        timeout: float = 10.0,
        clients: Mapping[str, str] | None = None,
    ) -> None:
        from jitchaos.idp import EmbeddedIdP
        from jitchaos.proxy import ChaosProxy

        if isinstance(source, EmbeddedIdP | ChaosProxy):
            self.url = source.url
            clock = clock if clock is not None else source.clock
            self._embedded = isinstance(source, EmbeddedIdP) or source.idp is not None
        elif isinstance(source, str) and source.startswith(("http://", "https://")):
            self.url = source.rstrip("/")
            self._embedded = False
        else:
            raise InvalidArgument(
                f"source={source!r} must be an EmbeddedIdP, a ChaosProxy or an http(s) URL"
            )
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise InvalidArgument(f"{name} must be a non-empty string")
        if clients is not None and not isinstance(clients, Mapping):
            raise InvalidArgument("clients must map client ids to their secrets")
        self._secrets: dict[str, Secret] = {client_id: Secret(client_secret)}
        for other, secret in (clients or {}).items():
            if not isinstance(other, str) or not other or ":" in other:
                raise InvalidArgument(f"clients names {other!r}, not a client id")
            if not isinstance(secret, str) or not secret:
                raise InvalidArgument(f"clients[{other!r}] must be a non-empty secret")
            self._secrets[other] = Secret(secret)
        if not isinstance(holder, str) or not holder:
            raise InvalidArgument(f"holder={holder!r} must be a non-empty string")
        if max_ttl is not None:
            finite_number("max_ttl", max_ttl, above=0, must="finite seconds > 0, or None")
        timeout = finite_number("timeout", timeout, minimum=0)
        if timeout == 0:
            raise InvalidArgument("timeout=0 must be seconds > 0")
        self.client_id = client_id
        self.holder = holder
        self.max_ttl = max_ttl
        self.clock: Clock = clock if clock is not None else SystemClock()
        sink = AuditLog(audit) if isinstance(audit, str | os.PathLike) else audit
        self.ledger = Ledger(self.clock, audit=sink)
        self._timeout = timeout
        self._endpoints: dict[str, str] | None = None
        self._live: dict[str, Credential] = {}
        self._lease_start: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"Broker({self.url!r}, client_id={self.client_id!r}, holder={self.holder!r})"

    # Granting.

    @property
    def clients(self) -> tuple[str, ...]:
        """The client ids this broker can grant as."""
        return tuple(self._secrets)

    def secret(self, client_id: str | None = None) -> Secret:
        """The secret of ``client_id`` (default: the broker's own client), for a test that
        talks to the IdP itself (introspection, say). A :class:`~jitchaos.Secret`: it never
        shows in a traceback."""
        client = self.client_id if client_id is None else client_id
        if client not in self._secrets:
            raise InvalidArgument(f"client_id={client!r} is no client of this broker")
        return self._secrets[client]

    def grant(
        self,
        principal: Principal | str,
        scopes: Iterable[str],
        ttl: float,
        *,
        resource: str | None = None,
    ) -> Credential:
        """A credential for ``principal`` with exactly ``scopes``, asked to live ``ttl`` seconds
        (capped at :attr:`max_ttl`; the request and the cap are both recorded), bound to
        ``resource`` (RFC 8707: the token's audience) when given."""
        who = Principal.parse(principal) if isinstance(principal, str) else principal
        if not isinstance(who, Principal):
            raise InvalidArgument(f"principal={principal!r} must be a Principal or 'kind:name'")
        wanted = scope_names("scopes", scopes)
        finite_number("ttl", ttl, above=0, must="finite seconds > 0")
        if resource is not None and (
            not isinstance(resource, str)
            or not resource.startswith(("http://", "https://", "urn:"))
        ):
            raise InvalidArgument(f"resource={resource!r} must be an absolute URI (RFC 8707)")
        granted_ttl = min(ttl, self.max_ttl) if self.max_ttl is not None else ttl
        seconds = max(1, int(granted_ttl))
        # The embedded IdP takes the lifetime a lease asks for (its ``ttl`` extension); a real
        # IdP issues its own, which the token then says.
        extra = {"ttl": str(seconds)} if self._embedded else {}
        if resource is not None:
            extra["resource"] = resource
        if who.kind is PrincipalKind.CLIENT:
            if who.name not in self._secrets:
                raise InvalidArgument(
                    f"principal={who} is no client of this broker (it has "
                    f"{', '.join(self._secrets)})"
                )
            form = {"grant_type": "client_credentials", "scope": format_scopes(wanted)}
            payload = self._token({**form, **extra}, client=who.name)
            client = who.name
        else:
            if not self._embedded:
                raise InvalidArgument(
                    f"principal={who}: user grants need the embedded IdP (a real IdP would "
                    "need its login page); grant the client itself instead"
                )
            payload = self._user_token(who.name, wanted, extra)
            client = self.client_id
        now = self.clock.now()
        return self._record(
            payload, who, wanted, now, granted_ttl, requested=ttl, client=client, resource=resource
        )

    @contextmanager
    def lease(
        self,
        principal: Principal | str,
        scopes: Collection[str],
        ttl: float,
        *,
        resource: str | None = None,
    ) -> Iterator[Credential]:
        """A credential for the length of a ``with`` block, given back at its end (also when
        the block raises)."""
        credential = self.grant(principal, scopes, ttl, resource=resource)
        try:
            yield credential
        finally:
            self.revoke(credential)

    def refresh(self, credential: Credential, *, ttl: float | None = None) -> Credential:
        """Exchange the credential's refresh token for a new one, within the lease's cap."""
        current = self._require(credential)
        if current.refresh_token is None:
            raise InvalidArgument(f"credential {current.fingerprint} has no refresh token")
        now = self.clock.now()
        wanted = (
            ttl
            if ttl is not None
            else current.expires_at - self._lease_start.get(current.grant_id, now)
        )
        if self.max_ttl is not None:
            remaining = self._lease_start[current.grant_id] + self.max_ttl - now
            if remaining < 1:
                raise InvalidArgument(
                    f"credential {current.fingerprint} reached its lease cap of "
                    f"{self.max_ttl:g}s; grant a new one"
                )
            wanted = min(wanted, remaining)
        seconds = max(1, int(wanted))
        form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
        if self._embedded:
            form["ttl"] = str(seconds)
        client = self._client_of(current)
        payload = self._token(form, client=client)
        access, expires_at, scopes, source = self._read(
            payload, now, seconds, current.scopes, client
        )
        tokens = [self._issued(access, TokenKind.ACCESS, now, expires_at, scopes)]
        fresh_refresh = payload.get("refresh_token")
        refresh: Secret | None
        if isinstance(fresh_refresh, str) and fresh_refresh != current.refresh_token:
            refresh = Secret(fresh_refresh)
            tokens.append(self._issued(refresh, TokenKind.REFRESH, now, now + 30 * 86400, scopes))
        else:
            refresh = current.refresh_token
        try:
            self.ledger.refresh(fingerprint(current.refresh_token), tokens=tokens)
        except AuditError:
            self._revoke_raw(refresh or access, client)
            raise
        fresh = attrs.evolve(
            current,
            access_token=access,
            refresh_token=refresh,
            fingerprint=fingerprint(access),
            expires_at=expires_at,
            scopes=scopes,
            lifetime_from=source,
        )
        self._live[current.grant_id] = fresh
        return fresh

    def revoke(self, credential: Credential, *, by_holder: bool = True) -> None:
        """Give the credential back: revoke it at the IdP (its refresh token takes the family)
        and record the return. ``by_holder`` False records that the holder never gave it back
        (the fixture that leased it takes it back). An IdP that refuses to revoke the token's
        type (``unsupported_token_type``) is recorded, not raised: the token stays valid until
        it expires. Any other failure is recorded, then raised as a
        :class:`~jitchaos.errors.BrokerError`. Revoking twice is harmless."""
        if not isinstance(credential, Credential):
            raise InvalidArgument(
                f"credential={credential!r} must be a Credential this broker granted"
            )
        current = self._live.pop(credential.grant_id, None)
        if current is None:
            return
        client = self._client_of(current)
        failures: list[str] = []
        refused: list[str] = []
        for token in (current.refresh_token, current.access_token):
            if token is None:
                continue
            try:
                ended, why = self._revoke_raw(token, client)
            except BrokerError as error:
                failures.append(str(error))
                continue
            if not ended:
                refused.append(why)
        revoked = not failures and not refused
        reason = "; ".join([*refused, *failures]) or "revoked at the IdP"
        by = "returned by" if by_holder else "never returned by"
        self.ledger.give_back(
            current.grant_id,
            holder=current.holder,
            by_holder=by_holder,
            revoked=revoked,
            valid_until=self.clock.now() if revoked else current.expires_at,
            reason=f"{by} {current.holder}: {reason}",
        )
        if revoked:
            self.ledger.revoke(grant=current.grant_id, reason=f"{by} {current.holder}")
        if failures:
            raise BrokerError(failures[0])

    def revoke_all(self, *, by_holder: bool = True) -> int:
        """Give back everything still held; returns how many credentials that was.
        ``by_holder`` False: the holder did not give them back (a fixture cleans up)."""
        held = list(self._live.values())
        errors: list[BaseException] = []
        for credential in held:
            try:
                self.revoke(credential, by_holder=by_holder)
            except (BrokerError, AuditError) as error:
                errors.append(error)
        if errors:
            raise errors[0]
        return len(held)

    @property
    def held(self) -> tuple[Credential, ...]:
        """Credentials granted and not yet revoked."""
        return tuple(self._live.values())

    def __enter__(self) -> Broker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.revoke_all()

    # Inside.

    def _require(self, credential: Credential) -> Credential:
        if not isinstance(credential, Credential):
            raise InvalidArgument(f"credential={credential!r} must be a Credential")
        current = self._live.get(credential.grant_id)
        if current is None:
            raise InvalidArgument(f"credential {credential.fingerprint} is no longer held")
        return current

    def _client_of(self, credential: Credential) -> str:
        name = credential.principal.name
        if credential.principal.kind is PrincipalKind.CLIENT and name in self._secrets:
            return name
        return self.client_id

    def _record(
        self,
        payload: dict[str, Any],
        who: Principal,
        wanted: frozenset[str],
        now: float,
        granted_ttl: float,
        *,
        requested: float,
        client: str,
        resource: str | None,
    ) -> Credential:
        access, expires_at, scopes, source = self._read(payload, now, granted_ttl, wanted, client)
        tokens = [self._issued(access, TokenKind.ACCESS, now, expires_at, scopes)]
        raw_refresh = payload.get("refresh_token")
        refresh = Secret(raw_refresh) if isinstance(raw_refresh, str) and raw_refresh else None
        if refresh is not None:
            tokens.append(self._issued(refresh, TokenKind.REFRESH, now, now + 30 * 86400, scopes))
        try:
            granted = self.ledger.grant(
                principal=who, client_id=client, scopes=scopes, tokens=tokens
            )
            self.ledger.lease(
                granted.grant_id,
                holder=self.holder,
                requested_ttl=requested,
                ttl=granted_ttl,
                max_ttl=self.max_ttl,
                resource=resource,
            )
        except Exception:
            # Fail closed: nothing (or not all) was recorded, so nothing may be handed out.
            self._revoke_raw(refresh or access, client)
            raise
        credential = Credential(
            access_token=access,
            refresh_token=refresh,
            fingerprint=fingerprint(access),
            expires_at=expires_at,
            scopes=scopes,
            principal=who,
            grant_id=granted.grant_id,
            holder=self.holder,
            resource=resource,
            lifetime_from=source,
        )
        self._live[granted.grant_id] = credential
        self._lease_start[granted.grant_id] = now
        return credential

    def _read(
        self,
        payload: dict[str, Any],
        now: float,
        ttl: float,
        wanted: frozenset[str],
        client: str,
    ) -> tuple[Secret, float, frozenset[str], str]:
        """The access token, when it stops working, its scopes, and where that end comes from:
        the JWT's ``exp``, the answer's ``expires_in``, introspection, or what was asked."""
        raw = payload.get("access_token")
        if not isinstance(raw, str) or not raw:
            raise BrokerError(f"{self.url}: the token response has no access_token")
        access = Secret(raw)
        scope = payload.get("scope")
        scopes = parse_scopes(scope) if isinstance(scope, str) else wanted
        life = _jwt_life(access)
        if life is not None:
            return access, now + life, scopes, "exp"
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            if not math.isfinite(expires_in) or expires_in <= 0:
                self._revoke_raw(access, client)
                raise BrokerError(f"{self.url}: the token answer says expires_in={expires_in!r}")
            return access, now + float(expires_in), scopes, "expires_in"
        expires = self._introspected_expiry(access, client)
        if expires is not None:
            if expires <= now:
                self._revoke_raw(access, client)
                raise BrokerError(
                    f"{self.url}: introspection says the new token expired at {instant(expires)}, "
                    f"before now ({instant(now)}): are the IdP's and the broker's clocks apart?"
                )
            return access, expires, scopes, "introspection"
        return access, now + ttl, scopes, "asked"

    def _introspected_expiry(self, token: Secret, client: str) -> float | None:
        endpoint = self._discover().get("introspection")
        if endpoint is None:
            return None
        status, _, body = self._send("POST", endpoint, {"token": token}, client=client)
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        exp = answer.get("exp") if status == 200 and isinstance(answer, dict) else None
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            return float(exp)
        return None

    @staticmethod
    def _issued(
        raw: str, kind: TokenKind, now: float, expires_at: float, scopes: frozenset[str]
    ) -> IssuedToken:
        return IssuedToken(
            fingerprint=fingerprint(raw),
            kind=kind,
            issued_at=now,
            expires_at=max(expires_at, now + 1),
            scopes=scopes,
        )

    def _user_token(
        self, user: str, scopes: frozenset[str], extra: dict[str, str]
    ) -> dict[str, Any]:
        endpoints = self._discover()
        query, verifier = authorization_query(
            client_id=self.client_id, redirect_uri=_REDIRECT, scopes=scopes, user=user
        )
        status, headers, body = self._send("GET", f"{endpoints['authorize']}?{query}")
        code, error = code_from(headers.get("Location", ""))
        if status != 302 or code is None:
            detail = _error_text(body) or error
            raise BrokerError(f"{self.url}: authorization for {user} refused: {detail}")
        return self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _REDIRECT,
                "code_verifier": verifier,
                **extra,
            },
            client=self.client_id,
        )

    def _token(self, form: dict[str, str], *, client: str) -> dict[str, Any]:
        status, _, body = self._send("POST", self._discover()["token"], form, client=client)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if status != 200 or not isinstance(payload, dict):
            raise BrokerError(
                f"{self.url}: token request ({form.get('grant_type')}) refused with HTTP "
                f"{status}: {_error_text(body)}"
            )
        for name in ("access_token", "refresh_token", "id_token"):
            if isinstance(payload.get(name), str):
                payload[name] = Secret(payload[name])  # never shown in a traceback
        return payload

    def _revoke_raw(self, token: Secret, client: str) -> tuple[bool, str]:
        """Revoke ``token`` at the IdP: (True, "") when it did; (False, why) when the IdP has
        no revocation endpoint or refuses to revoke this token type; BrokerError otherwise."""
        endpoint = self._discover().get("revocation")
        if endpoint is None:
            return False, "the IdP has no revocation endpoint"
        status, _, body = self._send("POST", endpoint, {"token": token}, client=client)
        if status == 200:
            return True, ""
        if status == 400 and _error_code(body) == "unsupported_token_type":
            # RFC 7009 §2.2.1: the IdP does not revoke this kind of token.
            return False, f"the IdP does not revoke this token type ({_error_text(body)})"
        raise BrokerError(
            f"{self.url}: revocation refused with HTTP {status}: {_error_text(body)}"
        )

    def _discover(self) -> dict[str, str]:
        if self._endpoints is None:
            url = self.url
            if "/.well-known/" not in url:
                url = f"{url}/.well-known/openid-configuration"
            status, _, body = self._send("GET", url)
            try:
                metadata = json.loads(body)
            except ValueError:
                metadata = None
            if status != 200 or not isinstance(metadata, dict) or "token_endpoint" not in metadata:
                raise BrokerError(f"{self.url}: no usable discovery document (HTTP {status})")
            fields = {
                "token": "token_endpoint",
                "authorize": "authorization_endpoint",
                "revocation": "revocation_endpoint",
                "introspection": "introspection_endpoint",
            }
            self._endpoints = {
                name: metadata[field]
                for name, field in fields.items()
                if isinstance(metadata.get(field), str)
            }
        return self._endpoints

    def _send(
        self,
        method: str,
        url: str,
        form: dict[str, str] | None = None,
        *,
        client: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json"}
        data = None
        if form is not None:
            # Forms carry tokens: the body is sealed, so a traceback through here shows none.
            data = _Sealed(urllib.parse.urlencode(form).encode())
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if client is not None:
            headers["Authorization"] = _basic(client, self._secrets[client])
        try:
            return exchange(method, url, headers=headers, body=data, timeout=self._timeout)
        except OSError as error:
            raise BrokerError(f"{self.url}: unreachable ({error})") from None


class _Sealed(bytes):
    """A request body that may carry tokens: its repr says only how long it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<form body, {len(self)} bytes>"


def _basic(client: str, secret: Secret) -> Secret:
    """RFC 6749 §2.3.1 client authentication, as a :class:`~jitchaos.Secret`."""
    return Secret(
        "Basic "
        + base64.b64encode(
            f"{urllib.parse.quote(client)}:{urllib.parse.quote(secret)}".encode()
        ).decode()
    )


def _jwt_life(token: str) -> float | None:
    """How long a JWT access token lives, ``exp - iat`` (read, not verified: the broker is its
    client; counted from the broker's own clock, whatever the IdP's says), or None for an
    opaque token or one without both claims."""
    if token.count(".") != 2:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp, iat = claims.get("exp"), claims.get("iat")
    numbers = [t for t in (exp, iat) if isinstance(t, int | float) and not isinstance(t, bool)]
    return float(numbers[0]) - float(numbers[1]) if len(numbers) == 2 else None


def _error_code(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) else None


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(data, dict):
        return str(data.get("error_description") or data.get("error") or data)
    return str(data)[:200]
