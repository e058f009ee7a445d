"""The ledger: the ground truth of every grant and what happened to it.

Every change (grant, refresh, narrow, widen, revoke, expire) is an immutable event. The ledger
writes each event to its audit sink *before* applying it, so an action the audit cannot record
never happens (fail closed). From the events it answers the one question the checker asks:
at time t, allowing a staleness of s seconds, must this token be allowed for these scopes, must it
be denied, or is either acceptable (:meth:`Ledger.verdict`)?

Tokens appear only as fingerprints; the ledger never sees a raw token.
"""

from __future__ import annotations

import bisect
import math
import threading
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import attrs

from jitchaos._checks import finite_number
from jitchaos._clock import Clock, ManualClock, instant
from jitchaos.errors import InvalidArgument, LedgerError

__all__ = ["Ledger"]

from jitchaos._records import (
    AuditSink,
    Expired,
    Grant,
    Granted,
    IssuedToken,
    KeyPublished,
    KeyWithdrawn,
    Leased,
    LedgerEvent,
    Narrowed,
    Outcome,
    Principal,
    Refreshed,
    Returned,
    Revoked,
    TokenKind,
    TokenRecord,
    TokenStatus,
    Verdict,
    Widened,
    _scope_set,
)

_E = TypeVar("_E", bound=LedgerEvent)


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
        # Each kept event's position: how many events were recorded before it. Positions
        # count every event ever recorded, kept or forgotten (forget_closed), so a position
        # (an example's start, a decision's ledger_seq) keeps meaning the same instant.
        self._positions: list[int] = []
        self._count = 0
        self._granted = 0  # grants ever made, kept or forgotten: the next grant's id
        self._first_at: float | None = None
        self._forgotten = 0  # grants forgotten
        self._forgot_before: float | None = None
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
        self._origin: float | None = None  # set on such a view: the whole ledger's
        self._told = threading.local()  # told_from's start, for this thread only

    @property
    def origin(self) -> float | None:
        """The run's start, as instants are told relative to it: the first event's time (the
        same for the live ledger and one replayed from its audit log); None before any."""
        told: float | None = getattr(self._told, "origin", None)
        if told is not None:
            return told
        if self._origin is not None:
            return self._origin
        return self._first_at

    @contextmanager
    def told_from(self, origin: float | None) -> Iterator[None]:
        """Tell instants from ``origin`` (an example's first event, when a run's examples
        share the ledger) in what this thread formats within the block."""
        saved = getattr(self._told, "origin", None)
        self._told.origin = origin
        try:
            yield
        finally:
            self._told.origin = saved

    def when(self, at: float) -> str:
        """``at`` as people read it (:func:`~jitchaos._clock.instant`, from :attr:`origin`)."""
        return instant(at, self.origin)

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
        """Every event in memory, in order: all of them, unless :meth:`forget_closed` let
        closed grants go (their events stay in the audit log)."""
        with self._lock:
            return tuple(self._events)

    def events_since(self, position: int) -> tuple[LedgerEvent, ...]:
        """The events in memory recorded after the first ``position`` (a :attr:`seq` read
        earlier: what happened since then)."""
        with self._lock:
            return tuple(self._events[bisect.bisect_left(self._positions, position) :])

    def next_event(self, position: int) -> LedgerEvent | None:
        """The first event in memory recorded after the first ``position`` ones."""
        with self._lock:
            index = bisect.bisect_left(self._positions, position)
            return self._events[index] if index < len(self._events) else None

    @property
    def seq(self) -> int:
        """How many events have been recorded (the seq of the latest), forgotten or not."""
        return self._count

    @property
    def forgotten(self) -> int:
        """How many closed grants :meth:`forget_closed` let go."""
        return self._forgotten

    def forget_closed(self, before: float, *, keep: Collection[str] = ()) -> int:
        """Let go of every grant closed before ``before``: each of its tokens past its ``exp``
        by then (see :meth:`_closed_at`). Its tokens, its events and its lease leave
        memory (an audit log keeps them: ``jitchaos audit`` reads them back). What a long
        run's memory holds is then bounded by what is open or recently closed. A verdict on a
        forgotten token is still right: a closed grant's tokens must be denied, as are tokens
        never issued, and it says it may have been forgotten. A grant with a token in ``keep``
        (the fingerprints of decisions still in memory, to be judged) stays. Returns how many
        grants went."""
        if isinstance(before, bool) or not isinstance(before, int | float):
            raise InvalidArgument(f"before={before!r} must be a time (seconds)")
        with self._lock:
            held = frozenset(keep)
            gone = {
                grant_id
                for grant_id, grant in self._grants.items()
                if self._closed_at(grant) <= before and held.isdisjoint(grant.fingerprints)
            }
            if not gone:
                return 0
            for grant_id in gone:
                for fp in self._grants.pop(grant_id).fingerprints:
                    self._tokens.pop(fp, None)
                    self._by_token.pop(fp, None)
                self._by_grant.pop(grant_id, None)
                self._leases.pop(grant_id, None)
                self._returns.pop(grant_id, None)
            kept = [
                (position, event)
                for position, event in zip(self._positions, self._events, strict=True)
                if not _only_about(event, gone)
            ]
            self._positions = [position for position, _ in kept]
            self._events = [event for _, event in kept]
            self._forgotten += len(gone)
            self._forgot_before = max(before, self._forgot_before or before)
            return len(gone)

    def _closed_at(self, grant: Grant) -> float:
        """When the last of the grant's tokens reached its ``exp``. A revocation or early
        expiry does not close it sooner: until ``exp`` the IdP that issued the token may still
        call it active (it never heard of a revocation the proxy applied), and only the
        ledger's record keeps it dead."""
        return max(
            (self._tokens[fp].token.expires_at for fp in grant.fingerprints),
            default=grant.issued_at,
        )

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
                    grant_id=f"g{self._granted + 1}",
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
        and one whose key was withdrawn may still be accepted for the longer of ``staleness``
        and ``key_staleness``.
        """
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
                if self._forgot_before is not None:
                    return Verdict(
                        Outcome.MUST_DENY,
                        "the token was never issued, or its grant closed before "
                        f"{self.when(self._forgot_before)} and was forgotten",
                    )
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
                    f"not valid before {self.when(token.issued_at)} (at {self.when(at)})",
                    evidence,
                )
            if at >= token.expires_at + leeway:
                return Verdict(
                    Outcome.MUST_DENY,
                    f"expired at {self.when(token.expires_at)} (at {self.when(at)})",
                    evidence,
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
            origin = self.origin
            reasons = [
                _deny_reason(record, grant, t, needed, origin=origin) for t in (low, *changes, at)
            ]
            reasons += [
                _deny_reason(record, grant, t, needed, before=True, origin=origin) for t in changes
            ]
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
                    f"{self.when(changed_at)}",
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
                    f"signed by key {kid}, withdrawn from the JWKS at {self.when(withdrawn)}",
                    evidence,
                )
            return Verdict(
                Outcome.EITHER,
                f"within the {window:g}s allowed after key {kid} was withdrawn at "
                f"{self.when(withdrawn)}",
                evidence,
            )
        # The latest publication up to ``at`` (not up to the token's ``iat``, which is whole
        # seconds: a key published at 12.3 signs a token of iat 12).
        published = [e for e in events if isinstance(e, KeyPublished)]
        if published and at < published[-1].at + key_staleness:
            return Verdict(
                Outcome.EITHER,
                f"signed by key {kid}, published at {self.when(published[-1].at)}: within the "
                f"{key_staleness:g}s key staleness a service's key cache may lag",
                tuple(sorted((*verdict.evidence, published[-1]), key=lambda e: e.seq)),
            )
        return verdict

    # Internals.

    def _commit(self, build: Callable[[int, float], _E]) -> _E:
        event = build(self._count + 1, self.clock.now())
        if self.audit is not None:
            self.audit.write(event)  # raises AuditError: nothing below happens
        self._apply(event)
        self._append(event)
        return event

    def _append(self, event: LedgerEvent) -> None:
        entry = (self._count, event)
        self._events.append(event)
        self._positions.append(self._count)
        self._count += 1
        if self._first_at is None:
            self._first_at = event.at
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
                self._granted += 1
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
        view._origin = self.origin  # its instants are still told from the run's start
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


def _only_about(event: LedgerEvent, grants: Collection[str]) -> bool:
    """Whether ``event`` concerns forgotten ``grants`` only (key events concern keys)."""
    if isinstance(event, KeyPublished | KeyWithdrawn):
        return False
    ids = getattr(event, "grant_ids", None)
    if ids is not None:
        return all(grant_id in grants for grant_id in ids)
    return getattr(event, "grant_id", None) in grants


def _deny_reason(
    record: TokenRecord,
    grant: Grant,
    at: float,
    needed: frozenset[str],
    *,
    before: bool = False,
    origin: float | None = None,
) -> str | None:
    """Why the token must be denied at ``at`` (ignoring its own exp/nbf), or None.

    ``before`` asks about the instant just before ``at``: changes made at ``at`` not yet applied.
    """

    def happened(when: float | None) -> bool:
        return when is not None and (when < at if before else when <= at)

    if record.revoked_at is not None and happened(record.revoked_at):
        return f"revoked at {instant(record.revoked_at, origin)}"
    if record.expired_at is not None and happened(record.expired_at):
        return f"expired early at {instant(record.expired_at, origin)}"
    scopes = grant.scope_history[0][1]
    for since, changed in grant.scope_history:
        if not happened(since):
            break
        scopes = changed
    allowed = record.token.scopes & scopes
    missing = needed - allowed
    if missing:
        return (
            f"scopes {sorted(missing)!r} not granted at {instant(at, origin)} "
            f"(allowed {sorted(allowed)!r})"
        )
    return None
