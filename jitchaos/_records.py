"""The ledger's records: principals, issued tokens, the events of the ground truth, and the
snapshots and verdicts the ledger answers with. Plain frozen values, validated on construction;
the :class:`~jitchaos.Ledger` (``_ledger.py``) is what records and judges them.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import attrs

from jitchaos._checks import at_least, finite_number, non_empty, typed
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._ledger import Ledger  # GrantRequest.record() takes one

__all__ = [
    "EVENT_TYPES",
    "AuditSink",
    "Expired",
    "Grant",
    "GrantRequest",
    "Granted",
    "IssuedToken",
    "KeyPublished",
    "KeyWithdrawn",
    "Leased",
    "LedgerEvent",
    "Narrowed",
    "Outcome",
    "Principal",
    "PrincipalKind",
    "Refreshed",
    "Returned",
    "Revoked",
    "TokenKind",
    "TokenRecord",
    "TokenStatus",
    "Verdict",
    "Widened",
]


class PrincipalKind(enum.Enum):
    """Who holds access: a user (subject) or a service (client)."""

    SUBJECT = "subject"
    CLIENT = "client"


def _scope_set(value: Iterable[str]) -> frozenset[str]:
    if type(value) is frozenset:
        return value
    if isinstance(value, str):
        raise InvalidArgument(f"scopes={value!r} must be a collection of scope names, not a str")
    return frozenset(value)


@attrs.frozen(order=True)
class Principal:
    """Who holds a grant; written ``subject:alice`` or ``client:billing``."""

    kind: PrincipalKind
    """Whether this is a user or a service."""
    name: str
    """The user name or the client id."""

    def __attrs_post_init__(self) -> None:
        # One check rather than a validator chain per field: one of these per issued token.
        if type(self.kind) is not PrincipalKind:
            raise InvalidArgument(f"kind={self.kind!r} must be a PrincipalKind")
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument(f"name={self.name!r} must be a non-empty str")

    @classmethod
    def subject(cls, name: str) -> Principal:
        """A user."""
        return cls(PrincipalKind.SUBJECT, name)

    @classmethod
    def client(cls, name: str) -> Principal:
        """A service acting for itself (client_credentials)."""
        return cls(PrincipalKind.CLIENT, name)

    @classmethod
    def parse(cls, text: object) -> Principal:
        """The principal written as ``kind:name``."""
        if not isinstance(text, str):
            return cls._bad(text)
        kind, sep, name = text.partition(":")
        try:
            return cls(PrincipalKind(kind), name) if sep else cls._bad(text)
        except (ValueError, TypeError):
            return cls._bad(text)

    @classmethod
    def _bad(cls, text: object) -> Principal:
        raise InvalidArgument(f"principal={text!r} is not 'subject:NAME' or 'client:NAME'")

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


class TokenKind(enum.Enum):
    """What a token is for; a refresh token is never an access token."""

    ACCESS = "access"
    REFRESH = "refresh"


@attrs.frozen(kw_only=True)
class IssuedToken:
    """One issued token as the ledger knows it: by fingerprint, never raw."""

    fingerprint: str
    """Truncated SHA-256 of the raw token (:func:`jitchaos.fingerprint`)."""
    kind: TokenKind
    """Access or refresh token."""
    issued_at: float
    """``iat``/``nbf``: not valid before."""
    expires_at: float
    """``exp``: not valid from this instant on."""
    scopes: frozenset[str] = attrs.field(converter=_scope_set)
    """The scopes the token carries (an access token's ``scope`` claim)."""
    kid: str | None = None
    """Key id that signed it, for JWTs."""

    def __attrs_post_init__(self) -> None:
        # One check rather than a validator per field: the proxy builds one of these per token.
        if not isinstance(self.fingerprint, str) or not self.fingerprint:
            raise InvalidArgument(f"fingerprint={self.fingerprint!r} must be a non-empty str")
        if not isinstance(self.kind, TokenKind):
            raise InvalidArgument(f"kind={self.kind!r} must be a TokenKind")
        finite_number("issued_at", self.issued_at)
        finite_number("expires_at", self.expires_at)
        if self.kid is not None and not isinstance(self.kid, str):
            raise InvalidArgument(f"kid={self.kid!r} must be a str or None")


class TokenStatus(enum.Enum):
    """Where one token stands at a given time."""

    ACTIVE = "active"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    SPENT = "spent"
    """A refresh token already exchanged (rotation): presenting it again is reuse."""


# Events. Each carries its position (seq, from 1) and time (at).


@attrs.frozen(kw_only=True)
class Granted:
    """A new grant was issued to a principal, with its first tokens."""

    seq: int
    at: float
    grant_id: str
    principal: Principal
    client_id: str
    scopes: frozenset[str] = attrs.field(converter=_scope_set)
    tokens: tuple[IssuedToken, ...]


@attrs.frozen(kw_only=True)
class Refreshed:
    """A refresh token was exchanged (and spent) for new tokens of the same grant."""

    seq: int
    at: float
    grant_id: str
    spent: str
    """Fingerprint of the refresh token that was exchanged."""
    tokens: tuple[IssuedToken, ...]


@attrs.frozen(kw_only=True)
class Narrowed:
    """A grant lost scopes (a role change): its tokens now allow only ``scopes``."""

    seq: int
    at: float
    grant_id: str
    scopes: frozenset[str] = attrs.field(converter=_scope_set)
    previous: frozenset[str] = attrs.field(converter=_scope_set)


@attrs.frozen(kw_only=True)
class Widened:
    """A grant gained scopes; tokens issued from now on may carry them."""

    seq: int
    at: float
    grant_id: str
    scopes: frozenset[str] = attrs.field(converter=_scope_set)
    previous: frozenset[str] = attrs.field(converter=_scope_set)


@attrs.frozen(kw_only=True)
class Revoked:
    """Tokens were revoked; ``reason`` says why (logout, reuse detection, key removed, ...)."""

    seq: int
    at: float
    reason: str
    fingerprints: tuple[str, ...]
    grant_ids: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Expired:
    """Tokens were made expired now, before their ``exp`` (an early expiry)."""

    seq: int
    at: float
    reason: str
    fingerprints: tuple[str, ...]
    grant_ids: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Leased:
    """A grant handed to a holder (a test) as a lease: what was asked, what was given, and the
    cap on its whole life, renewals included. Changes no access; the post-test audit reads it."""

    seq: int
    at: float
    grant_id: str
    holder: str
    """Who the credential was granted to, e.g. a pytest node id."""
    requested_ttl: float
    """The lifetime the holder asked for, in seconds."""
    ttl: float
    """The lifetime granted: the request, capped by ``max_ttl``."""
    max_ttl: float | None
    """The longest the grant may live from ``at``, renewals included; None for no cap."""
    resource: str | None = None
    """The RFC 8707 resource the credential was bound to (its audience), when one was asked."""


@attrs.frozen(kw_only=True)
class Returned:
    """A leased credential came back: given back by its holder, or taken back by the fixture
    that leased it because the holder never gave it back (``by_holder`` False). ``revoked``
    says whether the IdP ended it; when it did not (RFC 7009 §2.2.1 lets an IdP refuse to revoke
    a token type, as JWT-issuing IdPs do), its tokens stay valid until ``valid_until`` and
    ``reason`` says why. Changes no access by itself: a use after it is the holder's mistake."""

    seq: int
    at: float
    grant_id: str
    holder: str
    by_holder: bool
    revoked: bool
    valid_until: float
    reason: str


@attrs.frozen(kw_only=True)
class KeyPublished:
    """A signing key appeared in the JWKS; tokens are signed with it from ``signs_from`` (at
    once in an emergency rotation, later when the IdP publishes ahead, as Okta and Auth0 do).
    A key published again under the same kid (a rekey) is a new publication."""

    seq: int
    at: float
    kid: str
    signs_from: float


@attrs.frozen(kw_only=True)
class KeyWithdrawn:
    """A signing key left the JWKS (removed, or replaced behind its kid): the tokens it had
    signed stop verifying, once a service's key cache lets go of it (``Policy.key_staleness``)."""

    seq: int
    at: float
    kid: str
    reason: str
    fingerprints: tuple[str, ...]
    """The live tokens it had signed."""
    grant_ids: tuple[str, ...]


LedgerEvent = (
    Granted
    | Refreshed
    | Narrowed
    | Widened
    | Revoked
    | Expired
    | Leased
    | Returned
    | KeyPublished
    | KeyWithdrawn
)
EVENT_TYPES: tuple[type[LedgerEvent], ...] = (
    Granted,
    Refreshed,
    Narrowed,
    Widened,
    Revoked,
    Expired,
    Leased,
    Returned,
    KeyPublished,
    KeyWithdrawn,
)


@attrs.frozen(kw_only=True)
class Grant:
    """A snapshot of one grant: who, which client, and how its scopes changed over time."""

    grant_id: str
    principal: Principal
    client_id: str
    issued_at: float
    scope_history: tuple[tuple[float, frozenset[str]], ...]
    """``(since, scopes)`` pairs, oldest first."""
    fingerprints: tuple[str, ...]
    """Every token issued under this grant, in order."""

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the grant allows now."""
        return self.scope_history[-1][1]

    def scopes_at(self, at: float) -> frozenset[str]:
        """The scopes the grant allowed at time ``at``."""
        current = self.scope_history[0][1]
        for since, scopes in self.scope_history:
            if since > at:
                break
            current = scopes
        return current


@attrs.frozen(kw_only=True)
class TokenRecord:
    """A snapshot of one token and what happened to it."""

    token: IssuedToken
    grant_id: str
    principal: Principal
    client_id: str
    revoked_at: float | None = None
    expired_at: float | None = None
    """When the token was made expired early, if it was."""
    spent_at: float | None = None
    """When a refresh token was exchanged."""
    withdrawn_at: float | None = None
    """When the key that signed it left the JWKS (:class:`KeyWithdrawn`)."""

    def status(self, at: float) -> TokenStatus:
        """Where the token stands at time ``at``."""
        if self.revoked_at is not None and at >= self.revoked_at:
            return TokenStatus.REVOKED
        if self.withdrawn_at is not None and at >= self.withdrawn_at:
            return TokenStatus.REVOKED  # its signature no longer verifies
        if at >= self.token.expires_at or (self.expired_at is not None and at >= self.expired_at):
            return TokenStatus.EXPIRED
        if self.spent_at is not None and at >= self.spent_at:
            return TokenStatus.SPENT
        if at < self.token.issued_at:
            return TokenStatus.NOT_YET_VALID
        return TokenStatus.ACTIVE


class Outcome(enum.Enum):
    """The three-valued answer of the ground truth."""

    MUST_ALLOW = "must-allow"
    MUST_DENY = "must-deny"
    EITHER = "either"
    """Inside an allowed staleness or leeway window: allowing and denying are both correct."""


@attrs.frozen
class Verdict:
    """What the ledger says about one use of a token, and why."""

    outcome: Outcome
    reason: str
    evidence: tuple[LedgerEvent, ...] = ()
    """The ledger events that prove the outcome, oldest first."""


class AuditSink(Protocol):
    """Where the ledger writes each event before applying it."""

    def write(self, event: LedgerEvent) -> None:
        """Persist ``event`` or raise :class:`~jitchaos.errors.AuditError`."""
        ...


@attrs.frozen(kw_only=True)
class GrantRequest:
    """A grant to make: to whom, through which client, with which scopes, for how long.

    :meth:`record` turns it into a ledger event with synthetic tokens (what ``grants()``
    strategies draw for tests that drive a ledger without an IdP).
    """

    principal: Principal = attrs.field(validator=typed(Principal))
    client_id: str = attrs.field(validator=[typed(str), non_empty])
    scopes: frozenset[str] = attrs.field(converter=_scope_set)
    lifetime: int = attrs.field(validator=[typed(int), at_least(1)])
    """Seconds the access token lives."""
    refresh: bool = attrs.field(default=False, validator=typed(bool))
    """Whether a refresh token is issued with it."""

    def record(self, ledger: Ledger) -> Granted:
        """Grant it now in ``ledger``; the tokens' fingerprints follow from the ledger's state,
        so replaying the same requests gives the same fingerprints."""
        now = ledger.clock.now()
        seed = f"{ledger.seq}|{self!r}"
        tokens = [
            IssuedToken(
                fingerprint=hashlib.sha256(f"{seed}|access".encode()).hexdigest()[:16],
                kind=TokenKind.ACCESS,
                issued_at=now,
                expires_at=now + self.lifetime,
                scopes=self.scopes,
            )
        ]
        if self.refresh:
            tokens.append(
                IssuedToken(
                    fingerprint=hashlib.sha256(f"{seed}|refresh".encode()).hexdigest()[:16],
                    kind=TokenKind.REFRESH,
                    issued_at=now,
                    expires_at=now + 30 * self.lifetime,
                    scopes=self.scopes,
                )
            )
        return ledger.grant(
            principal=self.principal, client_id=self.client_id, scopes=self.scopes, tokens=tokens
        )
