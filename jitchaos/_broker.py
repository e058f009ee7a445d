"""Just-in-time credentials for tests: ask for a short-lived, scoped credential when you need
it, give it back when you are done, and leave an audit trail that proves you did.

The broker obtains real tokens from the embedded IdP, from the proxy's IdP side, or from a real
IdP (client_credentials), records each as a grant and a lease in its own ledger (and audit log)
before handing it out, and revokes through the IdP's RFC 7009 endpoint. If the audit record
cannot be written, the credential is revoked again and not handed out: no audit, no grant.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from jitchaos._audit import AuditLog
from jitchaos._checks import finite_number, scope_names
from jitchaos._clock import Clock, SystemClock
from jitchaos._ledger import AuditSink, IssuedToken, Ledger, Principal, PrincipalKind, TokenKind
from jitchaos._oauth_client import authorization_query, code_from, exchange
from jitchaos._tokens import fingerprint, format_scopes, parse_scopes
from jitchaos.errors import AuditError, BrokerError, InvalidArgument

if TYPE_CHECKING:
    from jitchaos.idp import EmbeddedIdP
    from jitchaos.proxy import ChaosProxy

__all__ = ["Broker", "Credential"]

_REDIRECT = "http://127.0.0.1/jitchaos-broker"


@attrs.frozen(kw_only=True)
class Credential:
    """A short-lived credential a test holds. Its repr shows the fingerprint, never the token."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(default=None, repr=False)
    fingerprint: str
    """Fingerprint of the access token (what logs, audits and notebooks show)."""
    expires_at: float
    """When the lease ends: the token's own expiry or the granted TTL, whichever is sooner."""
    scopes: frozenset[str]
    principal: Principal
    grant_id: str
    holder: str

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for an HTTP client."""
        return {"Authorization": f"Bearer {self.access_token}"}


class Broker:
    """Grants credentials from ``source`` as client ``client_id``/``client_secret`` to
    ``holder`` (a test id), each capped at ``max_ttl`` seconds of total life when given.

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
        if not isinstance(holder, str) or not holder:
            raise InvalidArgument(f"holder={holder!r} must be a non-empty string")
        if max_ttl is not None:
            finite_number("max_ttl", max_ttl, above=0, must="finite seconds > 0, or None")
        timeout = finite_number("timeout", timeout, minimum=0)
        if timeout == 0:
            raise InvalidArgument("timeout=0 must be seconds > 0")
        self.client_id = client_id
        self._secret = client_secret
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

    def grant(self, principal: Principal | str, scopes: Iterable[str], ttl: float) -> Credential:
        """A credential for ``principal`` with exactly ``scopes``, living ``ttl`` seconds
        (capped at :attr:`max_ttl`; the request and the cap are both recorded)."""
        who = Principal.parse(principal) if isinstance(principal, str) else principal
        if not isinstance(who, Principal):
            raise InvalidArgument(f"principal={principal!r} must be a Principal or 'kind:name'")
        wanted = scope_names("scopes", scopes)
        finite_number("ttl", ttl, above=0, must="finite seconds > 0")
        granted_ttl = min(ttl, self.max_ttl) if self.max_ttl is not None else ttl
        seconds = max(1, int(granted_ttl))
        if who.kind is PrincipalKind.CLIENT:
            if who.name != self.client_id:
                raise InvalidArgument(
                    f"principal={who} is another client; this broker grants as {self.client_id}"
                )
            form = {"grant_type": "client_credentials", "scope": format_scopes(wanted)}
            payload = self._token({**form, "ttl": str(seconds)})
        else:
            if not self._embedded:
                raise InvalidArgument(
                    f"principal={who}: user grants need the embedded IdP (a real IdP would "
                    "need its login page); grant the client itself instead"
                )
            payload = self._user_token(who.name, wanted, seconds)
        now = self.clock.now()
        credential = self._record(payload, who, wanted, now, granted_ttl, requested=ttl)
        return credential

    @contextmanager
    def lease(
        self, principal: Principal | str, scopes: Collection[str], ttl: float
    ) -> Iterator[Credential]:
        """A credential for the length of a ``with`` block, revoked at its end (also when the
        block raises)."""
        credential = self.grant(principal, scopes, ttl)
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
        payload = self._token(
            {
                "grant_type": "refresh_token",
                "refresh_token": current.refresh_token,
                "ttl": str(seconds),
            }
        )
        access, expires_at, scopes = self._read(payload, now, seconds, current.scopes)
        tokens = [self._issued(access, TokenKind.ACCESS, now, expires_at, scopes)]
        refresh = payload.get("refresh_token")
        if isinstance(refresh, str) and refresh != current.refresh_token:
            tokens.append(self._issued(refresh, TokenKind.REFRESH, now, now + 30 * 86400, scopes))
        else:
            refresh = current.refresh_token
        try:
            self.ledger.refresh(fingerprint(current.refresh_token), tokens=tokens)
        except AuditError:
            self._revoke_raw(refresh or access)
            raise
        fresh = attrs.evolve(
            current,
            access_token=access,
            refresh_token=refresh,
            fingerprint=fingerprint(access),
            expires_at=expires_at,
            scopes=scopes,
        )
        self._live[current.grant_id] = fresh
        return fresh

    def revoke(self, credential: Credential) -> None:
        """Revoke the credential at the IdP (its refresh token takes the family) and in the
        ledger. Revoking twice is harmless."""
        if not isinstance(credential, Credential):
            raise InvalidArgument(
                f"credential={credential!r} must be a Credential this broker granted"
            )
        current = self._live.pop(credential.grant_id, None)
        if current is None:
            return
        self._revoke_raw(current.refresh_token or current.access_token)
        if current.refresh_token is not None:
            self._revoke_raw(current.access_token)
        self.ledger.revoke(grant=current.grant_id, reason=f"returned by {current.holder}")

    def revoke_all(self) -> int:
        """Revoke everything still held; returns how many credentials that was."""
        held = list(self._live.values())
        errors: list[BaseException] = []
        for credential in held:
            try:
                self.revoke(credential)
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

    def _record(
        self,
        payload: dict[str, Any],
        who: Principal,
        wanted: frozenset[str],
        now: float,
        granted_ttl: float,
        *,
        requested: float,
    ) -> Credential:
        access, expires_at, scopes = self._read(payload, now, granted_ttl, wanted)
        tokens = [self._issued(access, TokenKind.ACCESS, now, expires_at, scopes)]
        refresh = payload.get("refresh_token")
        refresh = refresh if isinstance(refresh, str) and refresh else None
        if refresh is not None:
            tokens.append(self._issued(refresh, TokenKind.REFRESH, now, now + 30 * 86400, scopes))
        try:
            granted = self.ledger.grant(
                principal=who, client_id=self.client_id, scopes=scopes, tokens=tokens
            )
            self.ledger.lease(
                granted.grant_id,
                holder=self.holder,
                requested_ttl=requested,
                ttl=granted_ttl,
                max_ttl=self.max_ttl,
            )
        except AuditError:
            # Fail closed: nothing was recorded, so nothing may be handed out.
            self._revoke_raw(refresh or access)
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
        )
        self._live[granted.grant_id] = credential
        self._lease_start[granted.grant_id] = now
        return credential

    def _read(
        self, payload: dict[str, Any], now: float, ttl: float, wanted: frozenset[str]
    ) -> tuple[str, float, frozenset[str]]:
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise BrokerError(f"{self.url}: the token response has no access_token")
        expires_in = payload.get("expires_in")
        life = float(expires_in) if isinstance(expires_in, int | float) else ttl
        scope = payload.get("scope")
        scopes = parse_scopes(scope) if isinstance(scope, str) else wanted
        return access, now + min(life, ttl), scopes

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

    def _user_token(self, user: str, scopes: frozenset[str], ttl: int) -> dict[str, Any]:
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
                "ttl": str(ttl),
            }
        )

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        status, _, body = self._send("POST", self._discover()["token"], form, auth=True)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if status != 200 or not isinstance(payload, dict):
            raise BrokerError(
                f"{self.url}: token request ({form.get('grant_type')}) refused with HTTP "
                f"{status}: {_error_text(body)}"
            )
        return payload

    def _revoke_raw(self, token: str) -> None:
        endpoint = self._discover().get("revocation")
        if endpoint is None:
            return  # nothing to call; the token lives until it expires
        status, _, body = self._send("POST", endpoint, {"token": token}, auth=True)
        if status != 200:
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
            }
            self._endpoints = {
                name: metadata[field]
                for name, field in fields.items()
                if isinstance(metadata.get(field), str)
            }
        return self._endpoints

    def _send(
        self, method: str, url: str, form: dict[str, str] | None = None, *, auth: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": "application/json"}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth:
            pair = f"{urllib.parse.quote(self.client_id)}:{urllib.parse.quote(self._secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            return exchange(method, url, headers=headers, body=data, timeout=self._timeout)
        except OSError as error:
            raise BrokerError(f"{self.url}: unreachable ({error})") from None


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    if isinstance(data, dict):
        return str(data.get("error_description") or data.get("error") or data)
    return str(data)[:200]
