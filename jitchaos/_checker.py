"""The checker: history + ledger + policy -> violations, Jepsen-style.

Every recorded decision is judged against the ground truth at its instant
(:meth:`~jitchaos.Ledger.verdict`). A decision inside the window the policy allows (staleness
after a revocation or narrowing, clock leeway around ``exp``/``nbf``) is indeterminate, not
wrong; so is one that timed out or that the service could not make (a 5xx).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import attrs

from jitchaos._checks import route_scopes
from jitchaos._clock import instant
from jitchaos._history import Decision
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._records import (
    LedgerEvent,
    Narrowed,
    Outcome,
    Refreshed,
    Revoked,
    TokenKind,
    TokenRecord,
)
from jitchaos.errors import InvalidArgument

__all__ = ["FINDINGS", "VIOLATION_KINDS", "Forged", "Violation", "check"]

VIOLATION_KINDS = (
    "revoked-token-accepted",
    "expired-token-accepted",
    "narrowed-scope-honoured",
    "scope-not-enforced",
    "valid-token-rejected",
    "hostile-token-accepted",
    "confused-token-accepted",
    "profile-deviation-accepted",
    "removed-key-accepted",
    "refresh-token-accepted",
    "no-recovery-after-revoke",
    "refresh-storm",
    "cross-principal-leak",
)

_REJECTED = frozenset({401, 403})

FINDINGS = ("forgery", "confusion", "profile")
"""What accepting a hostile token means, by who could have made it:

- ``forgery``: made without the IdP's private keys (alg none, key confusion, a stripped or
  edited signature, an embedded jwk, jku/x5u, kid injection, an attacker's own key): anyone
  can, so accepting one is ``hostile-token-accepted``;
- ``confusion``: a real token of another kind, audience or issuer, or outside its validity
  (an ID or refresh token, another API's or tenant's token, one past ``exp``): an attacker who
  holds one can present it, so accepting one is ``confused-token-accepted``;
- ``profile``: an IdP-signed token that deviates from RFC 9068 (``typ``, ``exp`` missing or at
  the boundary, ``iat`` in the future, an odd scope or header): only the IdP could sign it, so
  accepting one is ``profile-deviation-accepted`` only under ``Policy(strict_profile=True)``.
"""


_HOSTILE_KINDS = {
    "forgery": ("hostile-token-accepted", "a forged token, made without the IdP's keys"),
    "confusion": (
        "confused-token-accepted",
        "a real token of another kind, audience or issuer, or outside its validity",
    ),
    "profile": (
        "profile-deviation-accepted",
        "an IdP-signed token that deviates from the RFC 9068 profile",
    ),
}
"""Finding -> (violation kind, what the token was, in words)."""


def _finding(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in FINDINGS:
        raise InvalidArgument(f"finding={value!r} must be one of {', '.join(FINDINGS)}")


@attrs.frozen
class Forged:
    """What a hostile token a test submitted is: its attack class in the catalogue, the
    variant, and the finding accepting it makes (one of :data:`FINDINGS`)."""

    attack: str
    """A class of the catalogue (``alg-none``); empty for a forgery of no named class."""
    variant: str = ""
    finding: str = attrs.field(default="forgery", validator=_finding)

    def named(self) -> str:
        return f"{self.attack}: {self.variant}" if self.variant else self.attack


@attrs.frozen
class Violation:
    """A decision the ground truth says was wrong, with the events that prove it."""

    kind: str
    """One of :data:`VIOLATION_KINDS`."""
    decision: Decision | None
    """The wrong decision; None for what a client did at the IdP (a refresh storm)."""
    sentence: str
    evidence: tuple[LedgerEvent, ...] = ()
    origin: float | None = None
    """The run's start (the ledger's first event): the timeline tells instants from it."""
    attack: str | None = None
    """For a hostile token accepted: its attack class (a run reports each class apart)."""

    @property
    def distinct(self) -> str:
        """What tells this violation apart from others in a run: its kind, and for a hostile
        token its attack class (``hostile-token-accepted: alg-none``)."""
        return self.kind if self.attack is None else f"{self.kind}: {self.attack}"

    def format(self) -> str:
        """One human sentence, then the timeline of its evidence."""
        lines = [f"[{self.kind}] {self.sentence}"]
        for event in self.evidence:
            lines.append(f"  {instant(event.at, self.origin)}  #{event.seq} {_describe(event)}")
        d = self.decision
        if d is not None:
            lines.append(f"  {instant(d.at, self.origin)}  {d.method} {d.path} -> {d.status}")
        return "\n".join(lines)


def _describe(event: LedgerEvent) -> str:
    name = type(event).__name__.lower()
    grant = getattr(event, "grant_id", None) or ", ".join(getattr(event, "grant_ids", ()))
    detail = getattr(event, "reason", "")
    if isinstance(event, Narrowed):
        detail = f"to [{' '.join(sorted(event.scopes))}]"
    return f"{name} {grant}" + (f" ({detail})" if detail else "")


def check(
    ledger: Ledger,
    decisions: Iterable[Decision],
    *,
    policy: Policy | None = None,
    required_scopes: Mapping[str, Collection[str]] | None = None,
    hostile: Collection[str] | Mapping[str, Forged] = (),
    clients: Collection[str] = (),
    since: int = 0,
) -> tuple[Violation, ...]:
    """Judge every decision that carried a token.

    ``required_scopes`` maps ``"METHOD /path"`` (or ``"/path"``) to the scopes the route needs;
    ``hostile`` holds the fingerprints of hostile tokens a test submitted, each mapped to what
    it is (:class:`Forged`; a plain collection: forgeries). Accepting one is a violation of its
    finding's kind (see :data:`FINDINGS`); accepting a token the IdP never issued is
    ``hostile-token-accepted``. ``clients`` names the OAuth clients whose
    token handling is under test: their tokens are also checked for recovery after a refusal
    (``no-recovery-after-revoke``) and their grants for refresh storms (in ledger events after
    event ``since``: a stateful test's earlier examples share the ledger).
    """
    if not isinstance(ledger, Ledger):
        raise InvalidArgument(f"ledger={ledger!r} must be a Ledger")
    policy = policy if policy is not None else Policy()
    if not isinstance(policy, Policy):
        raise InvalidArgument(f"policy={policy!r} must be a Policy")
    if isinstance(clients, str) or not isinstance(clients, Iterable):
        raise InvalidArgument(f"clients={clients!r} must be a collection of client ids")
    if isinstance(hostile, str) or not isinstance(hostile, Iterable):
        raise InvalidArgument(f"hostile={hostile!r} must be a collection of fingerprints")
    if isinstance(hostile, Mapping):
        for fp, what in hostile.items():
            if not isinstance(what, Forged):
                raise InvalidArgument(f"hostile[{fp!r}]={what!r} must be a Forged")
        forged: Mapping[str, Forged] = dict(hostile)
    else:
        forged = {fp: Forged("") for fp in hostile}  # forgeries of no named class
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise InvalidArgument(f"since={since!r} must be a ledger position (an int >= 0)")
    if not isinstance(decisions, Iterable):
        raise InvalidArgument(f"decisions={decisions!r} must be an iterable of Decision")
    required_scopes = route_scopes("required_scopes", required_scopes or {})
    under_test = frozenset(clients)
    judged = ledger.events_since(since) if since else ()
    # Instants are told from the start of what is judged: a machine's example (``since``),
    # or the whole run (its first event, forgotten or not).
    with ledger.told_from(judged[0].at if judged else ledger.origin):
        return _check(ledger, decisions, policy, required_scopes, forged, under_test, since)


def _check(
    ledger: Ledger,
    decisions: Iterable[Decision],
    policy: Policy,
    required_scopes: Mapping[str, frozenset[str]],
    forged: Mapping[str, Forged],
    under_test: frozenset[str],
    since: int,
) -> tuple[Violation, ...]:
    found: list[Violation] = []
    as_of: dict[tuple[int, str], Ledger] = {}
    refused: dict[str, Decision] = {}  # dead token -> the first decision that refused it
    reported: set[str] = set()
    served: list[tuple[Decision, Ledger]] = []  # accepted decisions, for cross-principal leaks
    for decision in decisions:
        if not isinstance(decision, Decision):
            raise InvalidArgument(f"decisions holds {decision!r}, not a Decision")
        judge_by = ledger
        record = ledger.lookup(decision.fingerprint) if decision.fingerprint else None
        # Events are in time order (the clock never goes back): only the first event recorded
        # after the answer can share its instant.
        after = (
            ledger.next_event(decision.ledger_seq)
            if record is not None and decision.ledger_seq > 0
            else None
        )
        if record is not None and after is not None and after.at <= decision.at:
            # Events of the same instant recorded after the service answered: judge the
            # decision by the token's grant as it stood then.
            key = (decision.ledger_seq, record.grant_id)
            if key not in as_of:
                as_of[key] = ledger._grant_as_of(record.grant_id, decision.ledger_seq)
            judge_by = as_of[key]
        violation = _judge(judge_by, decision, policy, required_scopes or {}, forged)
        if violation is not None and violation.kind == "scope-not-enforced":
            violation = _leak(judge_by, violation, served) or violation
        if violation is not None:
            found.append(attrs.evolve(violation, origin=ledger.origin))
        if decision.fingerprint is not None and (decision.accepted or decision.status == 403):
            # The service read this token's permissions: it let it in, or it authenticated it
            # and found a scope missing (a permission cache learns from either).
            served.append((decision, judge_by))
        if under_test:
            late = _no_recovery(judge_by, decision, policy, under_test, refused, reported)
            if late is not None:
                found.append(attrs.evolve(late, origin=ledger.origin))
    if under_test:
        found.extend(_storms(ledger, policy, under_test, since))
    return tuple(found)


def _no_recovery(
    ledger: Ledger,
    decision: Decision,
    policy: Policy,
    clients: frozenset[str],
    refused: dict[str, Decision],
    reported: set[str],
) -> Violation | None:
    """A client under test presenting a token again, longer than the policy's recovery window
    after a service refused it as dead: it never fetched a fresh one (refresh on a timer only,
    no reaction to 401)."""
    fp = decision.fingerprint
    record = ledger.lookup(fp) if fp is not None else None
    if fp is None or record is None or record.client_id not in clients:
        return None
    first = refused.get(fp)
    if first is not None:
        if decision.at - first.at > policy.recovery and fp not in reported:
            reported.add(fp)  # one violation per token
            late = decision.at - first.at
            return Violation(
                "no-recovery-after-revoke",
                decision,
                f"client {record.client_id} still presented token {fp} (grant "
                f"{record.grant_id}, {record.principal}) at {ledger.when(decision.at)}, "
                f"{late:.0f}s "
                f"after {first.method} {first.path} refused it as dead at {ledger.when(first.at)} "
                f"(policy: recover within {policy.recovery:g}s)",
                ledger.verdict(fp, at=decision.at).evidence,
            )
        return None
    if decision.status == 401:
        verdict = ledger.verdict(
            fp,
            at=decision.at,
            staleness=policy.staleness,
            leeway=policy.leeway,
            key_staleness=policy.key_staleness,
        )
        if verdict.outcome is Outcome.MUST_DENY:
            refused[fp] = decision
    return None


def _storms(
    ledger: Ledger, policy: Policy, clients: frozenset[str], since: int
) -> list[Violation]:
    """More exchanges of one refresh token than the policy allows, per grant of a client under
    test: concurrent requests that each refresh on their own. An attempt is an exchange
    (``Refreshed``) or a reuse the IdP caught (a ``Revoked`` for refresh-token reuse, which
    presented the refresh token the grant spent last)."""
    attempts: dict[tuple[str, str], list[LedgerEvent]] = {}
    last_spent: dict[str, str] = {}
    for event in ledger.events_since(since):
        if isinstance(event, Refreshed):
            last_spent[event.grant_id] = event.spent
            attempts.setdefault((event.grant_id, event.spent), []).append(event)
        elif isinstance(event, Revoked) and "reuse" in event.reason:
            for grant_id in event.grant_ids:
                key = (grant_id, last_spent.get(grant_id, ""))
                attempts.setdefault(key, []).append(event)
    found: list[Violation] = []
    for (grant_id, presented), made in attempts.items():
        grant = ledger.get_grant(grant_id)
        if grant.client_id not in clients or len(made) <= policy.max_refreshes:
            continue
        reused = any(isinstance(e, Revoked) for e in made)
        found.append(
            Violation(
                "refresh-storm",
                None,
                f"client {grant.client_id} refreshed grant {grant_id} ({grant.principal}) "
                f"{len(made)} times with one refresh token ({presented or 'unknown'}) at "
                f"{ledger.when(made[0].at)} to {ledger.when(made[-1].at)} "
                f"(policy: at most {policy.max_refreshes})"
                + ("; the IdP's reuse detection revoked the whole grant" if reused else ""),
                tuple(made),
                ledger.origin,
            )
        )
    return found


def _leak(
    ledger: Ledger, violation: Violation, served: list[tuple[Decision, Ledger]]
) -> Violation | None:
    """Whose permission a token that was allowed a scope its own grant never had was served
    with, among the tokens the service read before (allowed, or refused 403 for a scope). The
    same principal's earlier, wider token first (a role change: its next token carries fewer
    scopes, and a service keyed by subject keeps honouring the old ones:
    ``narrowed-scope-honoured``); else another principal who held the scope on the same
    service (``cross-principal-leak``); else None (only the scope was not enforced)."""
    decision = violation.decision
    if decision is None or decision.fingerprint is None:
        return None
    record = ledger.lookup(decision.fingerprint)
    if record is None:
        return None
    mine = ledger.get_grant(record.grant_id).scope_history[0][1] & record.token.scopes
    leaked: tuple[Decision, TokenRecord, frozenset[str], Ledger] | None = None
    for earlier, judged_by in reversed(served):
        if earlier.service != decision.service or earlier.fingerprint is None:
            continue
        other = judged_by.lookup(earlier.fingerprint)
        if other is None or other.token.fingerprint == record.token.fingerprint:
            continue
        grant = judged_by.get_grant(other.grant_id)
        extra = (other.token.scopes & grant.scopes_at(earlier.at)) - mine
        if not extra:
            continue
        first = next(e for e in judged_by.events if getattr(e, "grant_id", None) == grant.grant_id)
        if other.principal == record.principal:
            return Violation(
                "narrowed-scope-honoured",
                decision,
                f"{decision.method} {decision.path} at {ledger.when(decision.at)} was allowed "
                f"({decision.status}) with token {decision.fingerprint} of {record.principal}, "
                f"whose grant has only [{' '.join(sorted(mine))}]; the same principal's earlier "
                f"token {earlier.fingerprint} held [{' '.join(sorted(extra))}] (served at "
                f"{ledger.when(earlier.at)}): the service honours a wider permission it held "
                "before",
                (first, *violation.evidence),
            )
        if leaked is None:
            leaked = (earlier, other, extra, judged_by)
    if leaked is None:
        return None
    earlier, other, extra, judged_by = leaked
    first = next(e for e in judged_by.events if getattr(e, "grant_id", None) == other.grant_id)
    return Violation(
        "cross-principal-leak",
        decision,
        f"{decision.method} {decision.path} at {ledger.when(decision.at)} was allowed "
        f"({decision.status}) with token {decision.fingerprint} of {record.principal}, who "
        f"never held [{' '.join(sorted(extra))}]; {other.principal} did (token "
        f"{earlier.fingerprint}, served at {ledger.when(earlier.at)})",
        (first, *violation.evidence),
    )


def _judge(
    ledger: Ledger,
    decision: Decision,
    policy: Policy,
    required: Mapping[str, Collection[str]],
    forged: Mapping[str, Forged],
) -> Violation | None:
    fp = decision.fingerprint
    if fp is None or decision.status >= 500:
        return None  # no token, or no decision the service could make (timeout, outage)
    accepted = decision.accepted
    route = f"{decision.method} {decision.path}"
    record = ledger.lookup(fp)
    if record is None or fp in forged:
        if not accepted:
            return None
        allowed = f"{route} at {ledger.when(decision.at)} was allowed ({decision.status})"
        what = forged.get(fp)
        if what is None:
            never = "a token the IdP never issued" + (
                ", or one whose grant had closed and was forgotten past the proxy's horizon"
                if ledger.forgotten
                else ""
            )
            return Violation("hostile-token-accepted", decision, f"{allowed} with {never} ({fp})")
        if what.finding == "profile" and not policy.strict_profile:
            return None  # only the IdP could sign it; the policy does not ask for the profile
        kind, made = _HOSTILE_KINDS[what.finding]
        named = f"{what.named()}; " if what.attack else ""
        return Violation(
            kind, decision, f"{allowed} with {made} ({named}{fp})", attack=what.attack or None
        )
    needed = frozenset(required.get(route, required.get(decision.path, ())))
    verdict = ledger.verdict(
        fp,
        at=decision.at,
        scopes=needed,
        staleness=policy.staleness,
        leeway=policy.leeway,
        key_staleness=policy.key_staleness,
    )
    who = f"token {fp} (grant {record.grant_id}, {record.principal})"
    if verdict.outcome is Outcome.MUST_ALLOW and decision.status in _REJECTED:
        return Violation(
            "valid-token-rejected",
            decision,
            f"{route} at {ledger.when(decision.at)} was refused ({decision.status}) with {who}, "
            f"which was valid for [{' '.join(sorted(needed))}]",
            verdict.evidence,
        )
    if verdict.outcome is not Outcome.MUST_DENY or not accepted:
        return None
    if record.token.kind is TokenKind.REFRESH:
        kind = "refresh-token-accepted"
    else:
        plain = ledger.verdict(
            fp,
            at=decision.at,
            staleness=policy.staleness,
            leeway=policy.leeway,
            key_staleness=policy.key_staleness,
        )
        if plain.outcome is Outcome.MUST_DENY:
            if record.revoked_at is not None and record.revoked_at <= decision.at:
                kind = "revoked-token-accepted"
            elif _only_its_key_was_withdrawn(record, decision.at, policy):
                kind = "removed-key-accepted"
            else:
                kind = "expired-token-accepted"
        else:
            grant = ledger.get_grant(record.grant_id)
            had = record.token.scopes & grant.scope_history[0][1]
            kind = "narrowed-scope-honoured" if needed <= had else "scope-not-enforced"
    allowance = (
        f" (policy: {policy.key_staleness:g}s key staleness, {policy.staleness:g}s staleness)"
        if kind == "removed-key-accepted"
        else f" (policy: {policy.staleness:g}s staleness, {policy.leeway:g}s leeway)"
    )
    return Violation(
        kind,
        decision,
        f"{route} at {ledger.when(decision.at)} was allowed ({decision.status}) with {who} "
        "although "
        f"{verdict.reason}{allowance}",
        verdict.evidence,
    )


def _only_its_key_was_withdrawn(record: TokenRecord, at: float, policy: Policy) -> bool:
    """The token is dead only because the key that signed it left the JWKS: still within its
    life (leeway included) and never expired early."""
    return (
        record.withdrawn_at is not None
        and record.withdrawn_at <= at
        and at < record.token.expires_at + policy.leeway
        and (record.expired_at is None or record.expired_at > at)
    )
