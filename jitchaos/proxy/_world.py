"""The world faults act on: the proxy's ledger, its clock and the signing keys it holds.

Each change is a ledger event first; the IdP side then answers by the ledger (a revoked token
is inactive in introspection, its refresh refused), the service side records decisions against
it, and the checker judges them by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jitchaos._clock import Clock
from jitchaos._keys import KeyRing
from jitchaos._ledger import Ledger
from jitchaos._records import Principal, TokenKind, TokenRecord, TokenStatus
from jitchaos._tokens import format_scopes
from jitchaos.errors import LedgerError
from jitchaos.faults import NotApplicable

__all__ = ["ProxyWorld"]


class ProxyWorld:
    """Implements :class:`jitchaos.faults.World` for the proxy; ``keys`` says which signing
    keys the proxy holds now (the embedded IdP's, its own in re-signing mode, or none)."""

    def __init__(
        self,
        clock: Clock,
        ledger: Ledger,
        *,
        keys: Callable[[], KeyRing | None],
        hold_limit: float,
    ) -> None:
        self.clock = clock
        self.ledger = ledger
        self._keys = keys
        self._hold_limit = hold_limit
        self._honour_at: dict[str, float] = {}  # revoked fingerprint -> when the IdP honours it

    def now(self) -> float:
        return self.clock.now()

    def hold_limit(self) -> float:
        return self._hold_limit

    def keys(self) -> KeyRing | None:
        """The signing keys the proxy holds now, or None."""
        return self._keys()

    def forget_delays(self) -> None:
        """Delayed revocations are honoured at once from now on (the proxy was reset)."""
        self._honour_at.clear()

    def refused(self, record: TokenRecord, now: float, *, refresh: bool = False) -> bool:
        """Whether the IdP side treats the token as dead now (a delayed revocation is honoured
        only once its delay has passed; reuse of spent refresh tokens is the upstream's call)."""
        status = record.status(now)
        if status is TokenStatus.REVOKED:
            return now >= self._honour_at.get(record.token.fingerprint, now)
        if status is TokenStatus.NOT_YET_VALID:
            return not refresh
        return status is TokenStatus.EXPIRED

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
        keys = self.keys()
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
