"""The ledger: the ground truth of every grant and what happened to it.

Every change (grant, refresh, narrow, widen, revoke, expire) is an immutable event. The ledger
writes each event to its audit sink *before* applying it, so an action the audit cannot record
never happens (fail closed). From the events it answers the one question the checker asks:
at time t, allowing a staleness of s seconds, must this token be allowed for these scopes, must it
be denied, or is either acceptable (:meth:`Ledger.verdict`)?

Tokens appear only as fingerprints; the ledger never sees a raw token.
"""

from __future__ import annotations

import enum
import hashlib
import math
import threading
import typing
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol, TypeVar

import attrs

from jitchaos._checks import at_least, finite_number, non_empty, typed
from jitchaos._clock import Clock, ManualClock
from jitchaos.errors import InvalidArgument, LedgerError

__all__ = [
    "Expired",
    "Grant",
    "GrantRequest",
    "Granted",
    "IssuedToken",
    "KeyPublished",
    "KeyWithdrawn",
    "Leased",
    "Ledger",
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
_E = TypeVar(
    "_E",
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
        seed = f"{len(ledger.events)}|{self!r}"
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


class Ledger:
    """The ground truth: every grant and what happened to it.

    Thread-safe; every mutation is written to ``audit`` (when given) before it takes effect.
    """

    def __init__(self, clock: Clock | None = None, *, audit: AuditSink | None = None) -> None:
        if clock is not None and not callable(getattr(clock, "now", None)):
            raise InvalidArgument(f"clock={clock!r} must have now() (a Clock)")
        if audit is not None and not callable(getattr(audit, "write", None)):
            raise InvalidArgument(f"audit={audit!r} must have write(event) (an AuditSink)")
        self.clock: Clock = clock if clock is not None else ManualClock()
        self.audit = audit
        self._lock = threading.RLock()
        self._events: list[LedgerEvent] = []
        self._grants: dict[str, Grant] = {}
        self._leases: dict[str, Leased] = {}
        self._returns: dict[str, Returned] = {}
        self._tokens: dict[str, TokenRecord] = {}
        # Events by the token or grant they concern, with their position in _events: a
        # verdict's evidence is read from these, not from a scan of every event (the checker
        # asks for a verdict per decision, and a long run holds many thousands of events).
        self._by_token: dict[str, list[tuple[int, LedgerEvent]]] = {}
        self._by_grant: dict[str, list[tuple[int, LedgerEvent]]] = {}
        self._by_kid: dict[str, list[tuple[int, LedgerEvent]]] = {}
        self._partial = False  # holds one grant's events only (see _grant_as_of)

    @classmethod
    def replay(
        cls,
        events: Iterable[LedgerEvent],
        *,
        on_error: Callable[[LedgerEvent, str], None] | None = None,
    ) -> Ledger:
        """A ledger rebuilt from recorded events (an audit log), with no audit sink.

        An event that does not fit (it names a grant or token no earlier event created)
        raises :class:`~jitchaos.errors.LedgerError`, or, with ``on_error``, is reported to it
        and skipped.
        """
        ledger = cls()
        for event in events:
            if not isinstance(event, typing.get_args(LedgerEvent)):
                raise InvalidArgument(f"events holds {event!r}, not a ledger event")
            problem = ledger._misfit(event)
            if problem is not None:
                if on_error is None:
                    raise LedgerError(f"event {event.seq} does not fit: {problem}")
                on_error(event, problem)
                continue
            ledger._apply(event)
            ledger._append(event)
        return ledger

    # Reading.

    @property
    def events(self) -> tuple[LedgerEvent, ...]:
        """Every event, in order."""
        with self._lock:
            return tuple(self._events)

    @property
    def seq(self) -> int:
        """How many events have been recorded (the seq of the latest)."""
        return len(self._events)

    @property
    def leases(self) -> dict[str, Leased]:
        """The lease of each grant handed out as one, by grant id."""
        with self._lock:
            return dict(self._leases)

    @property
    def returns(self) -> dict[str, Returned]:
        """How each returned lease came back, by grant id."""
        with self._lock:
            return dict(self._returns)

    @property
    def grants(self) -> tuple[Grant, ...]:
        """Every grant, in issue order."""
        with self._lock:
            return tuple(self._grants.values())

    def get_grant(self, grant_id: str) -> Grant:
        """The grant ``grant_id``; raises :class:`~jitchaos.errors.LedgerError` when unknown."""
        with self._lock:
            try:
                return self._grants[grant_id]
            except KeyError:
                raise LedgerError(f"grant_id={grant_id!r} names no grant") from None

    def lookup(self, fingerprint: str) -> TokenRecord | None:
        """The record of the token with this fingerprint, or None if it was never issued."""
        with self._lock:
            return self._tokens.get(fingerprint)

    def open_grants(self, at: float) -> tuple[Grant, ...]:
        """Grants that still hold a usable token (active or not yet valid) at time ``at``."""
        usable = {TokenStatus.ACTIVE, TokenStatus.NOT_YET_VALID}
        with self._lock:
            return tuple(
                grant
                for grant in self._grants.values()
                if any(self._tokens[fp].status(at) in usable for fp in grant.fingerprints)
            )

    # Changing. Each method records exactly one event, or none when nothing changes.

    def grant(
        self,
        *,
        principal: Principal,
        client_id: str,
        scopes: Collection[str],
        tokens: Sequence[IssuedToken],
    ) -> Granted:
        """Record a new grant to ``principal`` through ``client_id`` and its first tokens."""
        if not isinstance(principal, Principal):
            raise InvalidArgument(f"principal={principal!r} must be a Principal")
        if not isinstance(client_id, str) or not client_id:
            raise InvalidArgument(f"client_id={client_id!r} must be a non-empty string")
        scope_set = _scope_set(scopes)
        with self._lock:
            self._check_new_tokens(tokens, scope_set)
            return self._commit(
                lambda seq, at: Granted(
                    seq=seq,
                    at=at,
                    grant_id=f"g{len(self._grants) + 1}",
                    principal=principal,
                    client_id=client_id,
                    scopes=scope_set,
                    tokens=tuple(tokens),
                )
            )

    def refresh(self, spent: str, *, tokens: Sequence[IssuedToken]) -> Refreshed:
        """Record that refresh token ``spent`` (a fingerprint) was exchanged for ``tokens``."""
        with self._lock:
            record = self._tokens.get(spent)
            if record is None or record.token.kind is not TokenKind.REFRESH:
                raise LedgerError(f"spent={spent!r} names no refresh token")
            status = record.status(self.clock.now())
            if status is not TokenStatus.ACTIVE:
                raise LedgerError(f"refresh token {spent} is {status.value}, not active")
            self._check_new_tokens(tokens, self._grants[record.grant_id].scopes)
            return self._commit(
                lambda seq, at: Refreshed(
                    seq=seq, at=at, grant_id=record.grant_id, spent=spent, tokens=tuple(tokens)
                )
            )

    def narrow(self, grant_id: str, scopes: Collection[str]) -> Narrowed | None:
        """Reduce the grant's scopes to ``scopes`` (a subset); None when nothing changes."""
        scope_set = _scope_set(scopes)
        with self._lock:
            previous = self.get_grant(grant_id).scopes
            if not scope_set <= previous:
                raise InvalidArgument(
                    f"scopes={sorted(scope_set)!r} is not a subset of the grant's "
                    f"{sorted(previous)!r}; use widen() to add scopes"
                )
            if scope_set == previous:
                return None
            return self._commit(
                lambda seq, at: Narrowed(
                    seq=seq, at=at, grant_id=grant_id, scopes=scope_set, previous=previous
                )
            )

    def widen(self, grant_id: str, scopes: Collection[str]) -> Widened | None:
        """Extend the grant's scopes to ``scopes`` (a superset); None when nothing changes."""
        scope_set = _scope_set(scopes)
        with self._lock:
            previous = self.get_grant(grant_id).scopes
            if not scope_set >= previous:
                raise InvalidArgument(
                    f"scopes={sorted(scope_set)!r} is not a superset of the grant's "
                    f"{sorted(previous)!r}; use narrow() to remove scopes"
                )
            if scope_set == previous:
                return None
            return self._commit(
                lambda seq, at: Widened(
                    seq=seq, at=at, grant_id=grant_id, scopes=scope_set, previous=previous
                )
            )

    def lease(
        self,
        grant_id: str,
        *,
        holder: str,
        requested_ttl: float,
        ttl: float,
        max_ttl: float | None = None,
        resource: str | None = None,
    ) -> Leased:
        """Record that grant ``grant_id`` was handed to ``holder`` as a lease."""
        if resource is not None and (not isinstance(resource, str) or not resource):
            raise InvalidArgument(f"resource={resource!r} must be a non-empty str or None")
        requested_ttl = finite_number("requested_ttl", requested_ttl, minimum=0)
        ttl = finite_number("ttl", ttl, minimum=0)
        if max_ttl is not None:
            max_ttl = finite_number("max_ttl", max_ttl, minimum=0)
        with self._lock:
            self.get_grant(grant_id)
            if not isinstance(holder, str) or not holder:
                raise InvalidArgument(f"holder={holder!r} must be a non-empty string")
            return self._commit(
                lambda seq, at: Leased(
                    seq=seq,
                    at=at,
                    grant_id=grant_id,
                    holder=holder,
                    requested_ttl=float(requested_ttl),
                    ttl=float(ttl),
                    max_ttl=None if max_ttl is None else float(max_ttl),
                    resource=resource,
                )
            )

    def revoke(
        self,
        *,
        token: str | None = None,
        grant: str | None = None,
        principal: Principal | None = None,
        kid: str | None = None,
        reason: str = "revoked",
    ) -> Revoked | None:
        """Revoke one token, a grant with its refresh-token family, every grant of a principal,
        or every token signed by key ``kid``. Exactly one selector; None when nothing was live.
        """
        with self._lock:
            fingerprints = self._select(token=token, grant=grant, principal=principal, kid=kid)
            if not fingerprints:
                return None
            return self._commit(
                lambda seq, at: Revoked(
                    seq=seq,
                    at=at,
                    reason=reason,
                    fingerprints=fingerprints,
                    grant_ids=self._grant_ids(fingerprints),
                )
            )

    def give_back(
        self,
        grant_id: str,
        *,
        holder: str,
        by_holder: bool,
        revoked: bool,
        valid_until: float,
        reason: str,
    ) -> Returned:
        """Record that the lease of ``grant_id`` came back (see :class:`Returned`)."""
        with self._lock:
            if grant_id not in self._grants:
                raise LedgerError(f"grant_id={grant_id!r} names no grant")
            if grant_id in self._returns:
                raise LedgerError(f"grant {grant_id} was already returned")
            until = finite_number("valid_until", valid_until)
            return self._commit(
                lambda seq, at: Returned(
                    seq=seq,
                    at=at,
                    grant_id=grant_id,
                    holder=holder,
                    by_holder=bool(by_holder),
                    revoked=bool(revoked),
                    valid_until=until,
                    reason=reason,
                )
            )

    def publish_key(self, kid: str, *, ahead: float = 0.0) -> KeyPublished:
        """Record that key ``kid`` is in the JWKS from now, signing ``ahead`` seconds later
        (at once by default); the event's ``signs_from`` is that time, on the ledger's clock."""
        if not isinstance(kid, str) or not kid:
            raise InvalidArgument(f"kid={kid!r} must be a non-empty str")
        wait = finite_number("ahead", ahead, minimum=0)
        with self._lock:
            return self._commit(
                lambda seq, at: KeyPublished(seq=seq, at=at, kid=kid, signs_from=at + wait)
            )

    def withdraw_key(self, kid: str, *, reason: str = "signing key removed") -> KeyWithdrawn:
        """Record that key ``kid`` left the JWKS (or was replaced behind its kid): every live
        token it signed stops verifying."""
        if not isinstance(kid, str) or not kid:
            raise InvalidArgument(f"kid={kid!r} must be a non-empty str")
        with self._lock:
            fingerprints = self._select(token=None, grant=None, principal=None, kid=kid)
            return self._commit(
                lambda seq, at: KeyWithdrawn(
                    seq=seq,
                    at=at,
                    kid=kid,
                    reason=reason,
                    fingerprints=fingerprints,
                    grant_ids=self._grant_ids(fingerprints),
                )
            )

    def expire(
        self,
        *,
        token: str | None = None,
        grant: str | None = None,
        principal: Principal | None = None,
        reason: str = "expired early",
    ) -> Expired | None:
        """Make tokens expired now, before their ``exp``; selectors as in :meth:`revoke`."""
        with self._lock:
            fingerprints = self._select(token=token, grant=grant, principal=principal, kid=None)
            if not fingerprints:
                return None
            return self._commit(
                lambda seq, at: Expired(
                    seq=seq,
                    at=at,
                    reason=reason,
                    fingerprints=fingerprints,
                    grant_ids=self._grant_ids(fingerprints),
                )
            )

    # The ground truth.

    def verdict(
        self,
        fingerprint: str,
        *,
        at: float,
        scopes: Collection[str] = frozenset(),
        staleness: float = 0.0,
        leeway: float = 0.0,
        key_staleness: float = 0.0,
    ) -> Verdict:
        """Must a request bearing this token, needing ``scopes``, be allowed at time ``at``?

        ``staleness`` is how long after a revocation, early expiry, narrowing or widening a
        service may still act on what it knew before (a cache the policy allows): inside that
        window both answers are correct (:attr:`Outcome.EITHER`). ``leeway`` is the clock
        disagreement allowed around ``exp`` and ``nbf``: within ``leeway`` of either edge, both
        answers are correct too. ``key_staleness`` is how long a service's key cache may lag the
        JWKS: a token signed by a key published less than that before ``at`` may be refused,
        and one signed by a key withdrawn less than that before may still be accepted.
        """
        verdict = self._verdict(fingerprint, at, scopes, staleness, leeway, key_staleness)
        return verdict

    def _verdict(
        self,
        fingerprint: str,
        at: float,
        scopes: Collection[str],
        staleness: float,
        leeway: float,
        key_staleness: float,
    ) -> Verdict:
        needed = _scope_set(scopes)
        for name, value in (
            ("at", at),
            ("staleness", staleness),
            ("leeway", leeway),
            ("key_staleness", key_staleness),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or (name != "at" and value < 0)
            ):
                raise InvalidArgument(
                    f"{name}={value!r} must be a finite number" + ("" if name == "at" else " >= 0")
                )
        with self._lock:
            record = self._tokens.get(fingerprint)
            if record is None:
                return Verdict(Outcome.MUST_DENY, "the token was never issued")
            grant = self._grants[record.grant_id]
            evidence = self._evidence(record, at)
            token = record.token
            if token.kind is TokenKind.REFRESH:
                return Verdict(
                    Outcome.MUST_DENY, "a refresh token is not an access token", evidence
                )
            if at < token.issued_at - leeway:
                return Verdict(
                    Outcome.MUST_DENY,
                    f"not valid before {token.issued_at:g} (at {at:g})",
                    evidence,
                )
            if at >= token.expires_at + leeway:
                return Verdict(
                    Outcome.MUST_DENY, f"expired at {token.expires_at:g} (at {at:g})", evidence
                )
            # The truth is piecewise constant between changes: sample it where the window
            # starts, at each change inside the window, and just before each such change (a
            # change at the very instant the token was issued still had a "before").
            low = min(max(at - staleness, token.issued_at), at)
            changes = sorted(
                t
                for t in self._change_times(record, grant)
                if at - staleness < t <= at and t >= token.issued_at
            )
            reasons = [_deny_reason(record, grant, t, needed) for t in (low, *changes, at)]
            reasons += [_deny_reason(record, grant, t, needed, before=True) for t in changes]
            if all(reason is None for reason in reasons):
                if at >= token.expires_at - leeway or at < token.issued_at + leeway:
                    verdict = Verdict(
                        Outcome.EITHER, f"within the {leeway:g}s leeway of nbf or exp", evidence
                    )
                else:
                    verdict = Verdict(
                        Outcome.MUST_ALLOW, "the token is valid for these scopes", evidence
                    )
            elif all(reason is not None for reason in reasons):
                verdict = Verdict(Outcome.MUST_DENY, str(reasons[-1]), evidence)
            else:
                changed_at = changes[-1] if changes else at
                verdict = Verdict(
                    Outcome.EITHER,
                    f"within the {staleness:g}s staleness allowed after the change at "
                    f"{changed_at:g}",
                    evidence,
                )
            return self._key_verdict(record, at, staleness, key_staleness, verdict)

    def _key_verdict(
        self,
        record: TokenRecord,
        at: float,
        staleness: float,
        key_staleness: float,
        verdict: Verdict,
    ) -> Verdict:
        """``verdict`` (on everything but keys) with the token's signing key taken into account.

        A token whose key was withdrawn is dead; a service learns it from its key set (a JWT
        service: ``key_staleness``) or from the IdP (an introspecting one: ``staleness``), so
        it must fail once both windows have passed. A key published less than
        ``key_staleness`` ago may be unknown to a service's key cache: refusing is allowed."""
        if verdict.outcome is Outcome.MUST_DENY or record.token.kid is None:
            return verdict
        kid = record.token.kid
        events = [e for _, e in self._by_kid.get(kid, ()) if e.at <= at]
        withdrawn = record.withdrawn_at
        if withdrawn is not None and withdrawn <= at:
            proof = tuple(e for e in events if isinstance(e, KeyWithdrawn) and e.at == withdrawn)
            evidence = tuple(sorted((*verdict.evidence, *proof), key=lambda e: e.seq))
            window = max(staleness, key_staleness)
            if at >= withdrawn + window:
                return Verdict(
                    Outcome.MUST_DENY,
                    f"signed by key {kid}, withdrawn from the JWKS at {withdrawn:g}",
                    evidence,
                )
            return Verdict(
                Outcome.EITHER,
                f"within the {window:g}s allowed after key {kid} was withdrawn at {withdrawn:g}",
                evidence,
            )
        # The latest publication up to ``at`` (not up to the token's ``iat``, which is whole
        # seconds: a key published at 12.3 signs a token of iat 12).
        published = [e for e in events if isinstance(e, KeyPublished)]
        if published and at < published[-1].at + key_staleness:
            return Verdict(
                Outcome.EITHER,
                f"signed by key {kid}, published at {published[-1].at:g}: within the "
                f"{key_staleness:g}s key staleness a service's key cache may lag",
                tuple(sorted((*verdict.evidence, published[-1]), key=lambda e: e.seq)),
            )
        return verdict

    # Internals.

    def _commit(self, build: Callable[[int, float], _E]) -> _E:
        event = build(len(self._events) + 1, self.clock.now())
        if self.audit is not None:
            self.audit.write(event)  # raises AuditError: nothing below happens
        self._apply(event)
        self._append(event)
        return event

    def _append(self, event: LedgerEvent) -> None:
        entry = (len(self._events), event)
        self._events.append(event)
        match event:
            case Granted() | Refreshed():
                for token in event.tokens:
                    self._by_token.setdefault(token.fingerprint, []).append(entry)
            case Revoked() | Expired():
                for fp in event.fingerprints:
                    self._by_token.setdefault(fp, []).append(entry)
            case Narrowed() | Widened() | Leased() | Returned():
                self._by_grant.setdefault(event.grant_id, []).append(entry)
            case KeyPublished() | KeyWithdrawn():
                self._by_kid.setdefault(event.kid, []).append(entry)

    def _apply(self, event: LedgerEvent) -> None:
        match event:
            case Granted():
                self._grants[event.grant_id] = Grant(
                    grant_id=event.grant_id,
                    principal=event.principal,
                    client_id=event.client_id,
                    issued_at=event.at,
                    scope_history=((event.at, event.scopes),),
                    fingerprints=tuple(t.fingerprint for t in event.tokens),
                )
                self._add_tokens(event.grant_id, event.tokens)
            case Refreshed():
                self._tokens[event.spent] = attrs.evolve(
                    self._tokens[event.spent], spent_at=event.at
                )
                grant = self._grants[event.grant_id]
                self._grants[event.grant_id] = attrs.evolve(
                    grant,
                    fingerprints=grant.fingerprints + tuple(t.fingerprint for t in event.tokens),
                )
                self._add_tokens(event.grant_id, event.tokens)
            case Narrowed() | Widened():
                grant = self._grants[event.grant_id]
                self._grants[event.grant_id] = attrs.evolve(
                    grant, scope_history=(*grant.scope_history, (event.at, event.scopes))
                )
            case Revoked():
                for fp in self._held(event.fingerprints):
                    self._tokens[fp] = attrs.evolve(self._tokens[fp], revoked_at=event.at)
            case Expired():
                for fp in self._held(event.fingerprints):
                    self._tokens[fp] = attrs.evolve(self._tokens[fp], expired_at=event.at)
            case Leased():
                self._leases[event.grant_id] = event
            case Returned():
                self._returns[event.grant_id] = event
            case KeyWithdrawn():
                for fp in self._held(event.fingerprints):
                    self._tokens[fp] = attrs.evolve(self._tokens[fp], withdrawn_at=event.at)
            case KeyPublished():
                pass

    def _held(self, fingerprints: Iterable[str]) -> Iterable[str]:
        if not self._partial:
            return fingerprints
        return [fp for fp in fingerprints if fp in self._tokens]  # other grants' tokens

    def _grant_as_of(self, grant_id: str, seq: int) -> Ledger:
        """A ledger of grant ``grant_id`` alone, as the first ``seq`` events left it.

        The checker judges a decision by the ledger as it stood when the service answered,
        when later events share the answer's instant. Replaying every event up to there cost
        time in proportion to the whole run for each such decision; a verdict about a token
        depends on its own grant's events only, which the indexes hold."""
        with self._lock:
            grant = self._grants[grant_id]
            chosen = {
                position: event
                for fp in grant.fingerprints
                for position, event in self._by_token.get(fp, ())
                if position < seq
            }
            chosen.update(
                (position, event)
                for position, event in self._by_grant.get(grant_id, ())
                if position < seq
            )
            kids = {self._tokens[fp].token.kid for fp in grant.fingerprints} - {None}
            chosen.update(
                (position, event)
                for kid in kids
                for position, event in self._by_kid.get(str(kid), ())
                if position < seq
            )
        view = Ledger(self.clock)
        view._partial = True
        for position in sorted(chosen):
            view._apply(chosen[position])
            view._append(chosen[position])
        return view

    def _misfit(self, event: LedgerEvent) -> str | None:
        """Why ``event`` cannot be applied to the current state, or None."""
        match event:
            case Granted():
                if event.grant_id in self._grants:
                    return f"grant {event.grant_id} was already issued"
                return self._misfit_tokens(event.tokens)
            case Refreshed():
                if event.grant_id not in self._grants:
                    return f"grant {event.grant_id} was never issued"
                if event.spent not in self._tokens:
                    return f"refresh token {event.spent} was never issued"
                return self._misfit_tokens(event.tokens)
            case Narrowed() | Widened() | Leased() | Returned():
                if event.grant_id not in self._grants:
                    return f"grant {event.grant_id} was never issued"
            case Revoked() | Expired() | KeyWithdrawn():
                unknown = [fp for fp in event.fingerprints if fp not in self._tokens]
                if unknown:
                    return f"token {unknown[0]} was never issued"
        return None

    def _misfit_tokens(self, tokens: Iterable[IssuedToken]) -> str | None:
        seen: set[str] = set()
        for token in tokens:
            if token.fingerprint in self._tokens or token.fingerprint in seen:
                return f"token {token.fingerprint} was already issued"
            seen.add(token.fingerprint)
        return None

    def _add_tokens(self, grant_id: str, tokens: Iterable[IssuedToken]) -> None:
        grant = self._grants[grant_id]
        for token in tokens:
            self._tokens[token.fingerprint] = TokenRecord(
                token=token,
                grant_id=grant_id,
                principal=grant.principal,
                client_id=grant.client_id,
            )

    def _check_new_tokens(self, tokens: Sequence[IssuedToken], allowed: frozenset[str]) -> None:
        if not tokens:
            raise InvalidArgument("tokens=() must hold at least one issued token")
        seen: set[str] = set()
        for token in tokens:
            if not isinstance(token, IssuedToken):
                raise InvalidArgument(f"tokens must be IssuedToken values, not {token!r}")
            if token.fingerprint in self._tokens or token.fingerprint in seen:
                raise InvalidArgument(f"token {token.fingerprint} was already issued")
            seen.add(token.fingerprint)
            if not token.scopes <= allowed:
                raise InvalidArgument(
                    f"token {token.fingerprint} carries {sorted(token.scopes)!r}, more than the "
                    f"grant's {sorted(allowed)!r}"
                )
            if not token.issued_at < token.expires_at:
                raise InvalidArgument(
                    f"token {token.fingerprint} expires ({token.expires_at!r}) before it is "
                    f"issued ({token.issued_at!r})"
                )

    def _select(
        self, *, token: str | None, grant: str | None, principal: Principal | None, kid: str | None
    ) -> tuple[str, ...]:
        given = [
            name
            for name, value in (
                ("token", token),
                ("grant", grant),
                ("principal", principal),
                ("kid", kid),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise InvalidArgument(
                f"give exactly one of token, grant, principal, kid (got {given or 'none'})"
            )
        if token is not None:
            if token not in self._tokens:
                raise LedgerError(f"token={token!r} names no issued token")
            candidates: Iterable[str] = (token,)
        elif grant is not None:
            candidates = self.get_grant(grant).fingerprints
        elif principal is not None:
            candidates = (
                fp
                for g in self._grants.values()
                if g.principal == principal
                for fp in g.fingerprints
            )
        else:
            candidates = (fp for fp, record in self._tokens.items() if record.token.kid == kid)
        now = self.clock.now()
        live = {TokenStatus.ACTIVE, TokenStatus.NOT_YET_VALID}
        return tuple(fp for fp in candidates if self._tokens[fp].status(now) in live)

    def _grant_ids(self, fingerprints: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self._tokens[fp].grant_id for fp in fingerprints))

    def _change_times(self, record: TokenRecord, grant: Grant) -> list[float]:
        times = [since for since, _ in grant.scope_history[1:]]
        times += [t for t in (record.revoked_at, record.expired_at) if t is not None]
        return times

    def _evidence(self, record: TokenRecord, at: float) -> tuple[LedgerEvent, ...]:
        """The events up to ``at`` about the token (its issue, revocation, expiry) and its
        grant (narrowing, widening, lease), in ledger order."""
        entries = self._by_token.get(record.token.fingerprint, []) + self._by_grant.get(
            record.grant_id, []
        )
        entries.sort(key=lambda entry: entry[0])
        return tuple(event for _, event in entries if event.at <= at)


def _deny_reason(
    record: TokenRecord, grant: Grant, at: float, needed: frozenset[str], *, before: bool = False
) -> str | None:
    """Why the token must be denied at ``at`` (ignoring its own exp/nbf), or None.

    ``before`` asks about the instant just before ``at``: changes made at ``at`` not yet applied.
    """

    def happened(when: float | None) -> bool:
        return when is not None and (when < at if before else when <= at)

    if happened(record.revoked_at):
        return f"revoked at {record.revoked_at:g}"
    if happened(record.expired_at):
        return f"expired early at {record.expired_at:g}"
    scopes = grant.scope_history[0][1]
    for since, changed in grant.scope_history:
        if not happened(since):
            break
        scopes = changed
    allowed = record.token.scopes & scopes
    missing = needed - allowed
    if missing:
        return f"scopes {sorted(missing)!r} not granted at {at:g} (allowed {sorted(allowed)!r})"
    return None
