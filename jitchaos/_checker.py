"""The checker: history + ledger + policy -> violations, Jepsen-style.

Every recorded decision is judged against the ground truth at its instant
(:meth:`~jitchaos.Ledger.verdict`). A decision inside the window the policy allows (staleness
after a revocation or narrowing, clock leeway around ``exp``/``nbf``) is indeterminate, not
wrong; so is one that timed out or that the service could not make (a 5xx).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import attrs

from jitchaos._ledger import Ledger, LedgerEvent, Narrowed, Outcome, TokenKind
from jitchaos._policy import Policy
from jitchaos.errors import InvalidArgument
from jitchaos.proxy._history import Decision

__all__ = ["VIOLATION_KINDS", "Violation", "check"]

VIOLATION_KINDS = (
    "revoked-token-accepted",
    "expired-token-accepted",
    "narrowed-scope-honoured",
    "scope-not-enforced",
    "valid-token-rejected",
    "hostile-token-accepted",
    "refresh-token-accepted",
)

_REJECTED = frozenset({401, 403})


@attrs.frozen
class Violation:
    """A decision the ground truth says was wrong, with the events that prove it."""

    kind: str
    """One of :data:`VIOLATION_KINDS`."""
    decision: Decision
    sentence: str
    evidence: tuple[LedgerEvent, ...] = ()

    def format(self) -> str:
        """One human sentence, then the timeline of its evidence."""
        lines = [f"[{self.kind}] {self.sentence}"]
        for event in self.evidence:
            lines.append(f"  t={event.at:.0f}  #{event.seq} {_describe(event)}")
        d = self.decision
        lines.append(f"  t={d.at:.0f}  {d.method} {d.path} -> {d.status}")
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
    hostile: Collection[str] = (),
) -> tuple[Violation, ...]:
    """Judge every decision that carried a token.

    ``required_scopes`` maps ``"METHOD /path"`` (or ``"/path"``) to the scopes the route needs;
    ``hostile`` holds fingerprints of forged tokens a test submitted (any acceptance of one, or
    of a token the IdP never issued, is a violation).
    """
    if not isinstance(ledger, Ledger):
        raise InvalidArgument(f"ledger={ledger!r} must be a Ledger")
    policy = policy if policy is not None else Policy()
    if not isinstance(policy, Policy):
        raise InvalidArgument(f"policy={policy!r} must be a Policy")
    forged = frozenset(hostile)
    found: list[Violation] = []
    events = ledger.events
    as_of: dict[int, Ledger] = {}
    for decision in decisions:
        judge_by = ledger
        # Events are in time order (the clock never goes back): only the first event recorded
        # after the answer can share its instant.
        if 0 < decision.ledger_seq < len(events) and (
            events[decision.ledger_seq].at <= decision.at
        ):
            # Events of the same instant recorded after the service answered: judge the
            # decision by the ledger as it stood then.
            if decision.ledger_seq not in as_of:
                as_of[decision.ledger_seq] = Ledger.replay(events[: decision.ledger_seq])
            judge_by = as_of[decision.ledger_seq]
        violation = _judge(judge_by, decision, policy, required_scopes or {}, forged)
        if violation is not None:
            found.append(violation)
    return tuple(found)


def _judge(
    ledger: Ledger,
    decision: Decision,
    policy: Policy,
    required: Mapping[str, Collection[str]],
    forged: frozenset[str],
) -> Violation | None:
    fp = decision.fingerprint
    if fp is None or decision.status >= 500:
        return None  # no token, or no decision the service could make (timeout, outage)
    accepted = decision.accepted
    route = f"{decision.method} {decision.path}"
    record = ledger.lookup(fp)
    if record is None or fp in forged:
        if accepted:
            what = "a forged token" if fp in forged else "a token the IdP never issued"
            return Violation(
                "hostile-token-accepted",
                decision,
                f"{route} at t={decision.at:.0f} was allowed ({decision.status}) with {what} "
                f"({fp})",
            )
        return None
    needed = frozenset(required.get(route, required.get(decision.path, ())))
    verdict = ledger.verdict(
        fp, at=decision.at, scopes=needed, staleness=policy.staleness, leeway=policy.leeway
    )
    who = f"token {fp} (grant {record.grant_id}, {record.principal})"
    if verdict.outcome is Outcome.MUST_ALLOW and decision.status in _REJECTED:
        return Violation(
            "valid-token-rejected",
            decision,
            f"{route} at t={decision.at:.0f} was refused ({decision.status}) with {who}, "
            f"which was valid for [{' '.join(sorted(needed))}]",
            verdict.evidence,
        )
    if verdict.outcome is not Outcome.MUST_DENY or not accepted:
        return None
    if record.token.kind is TokenKind.REFRESH:
        kind = "refresh-token-accepted"
    else:
        plain = ledger.verdict(
            fp, at=decision.at, staleness=policy.staleness, leeway=policy.leeway
        )
        if plain.outcome is Outcome.MUST_DENY:
            kind = (
                "revoked-token-accepted"
                if record.revoked_at is not None and record.revoked_at <= decision.at
                else "expired-token-accepted"
            )
        else:
            grant = ledger.get_grant(record.grant_id)
            had = record.token.scopes & grant.scope_history[0][1]
            kind = "narrowed-scope-honoured" if needed <= had else "scope-not-enforced"
    allowance = f" (policy: {policy.staleness:g}s staleness, {policy.leeway:g}s leeway)"
    return Violation(
        kind,
        decision,
        f"{route} at t={decision.at:.0f} was allowed ({decision.status}) with {who} although "
        f"{verdict.reason}{allowance}",
        verdict.evidence,
    )
