"""The run report: how fast a service recovers from each kind of fault, and what it costs.

Recovery is measured on the clock the test drives: from a fault to the service's first decision
that agrees with the exact ground truth (no staleness allowed), among decisions about what the
fault touched (the tokens of a revoked, narrowed or expired grant; any token after a key
rotation or an outage). Latency is real time through the proxy: decisions right after a fault
(which pay for refetching keys or introspecting again) against all the others.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from jitchaos._coverage import Coverage, coverage
from jitchaos._history import AppliedFault, Decision
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._records import Expired, KeyWithdrawn, LedgerEvent, Narrowed, Outcome, Revoked
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._checker import Forged

__all__ = ["RunReport", "report"]

_AFTER = 5
"""Decisions after a fault counted as paying its cost."""


@attrs.frozen
class RunReport:
    """Per fault kind: recovery times (None where no correct decision followed) and decision
    latencies right after the fault; plus every other decision's latency as the baseline."""

    recovery: Mapping[str, tuple[float | None, ...]] = attrs.field(factory=dict)
    after: Mapping[str, tuple[float, ...]] = attrs.field(factory=dict)
    baseline: tuple[float, ...] = ()
    calls: Mapping[str, Mapping[int, int]] = attrs.field(factory=dict)
    """Per route (``"GET /read"``): how many calls with a token got each status."""
    judged: int = 0
    """Decisions the checker could judge: determinate (must-allow or must-deny under the
    policy, a hostile token must-deny) and answered (not 5xx)."""
    faults: int = 0
    """Faults applied."""
    faults_followed: int = 0
    """Faults followed by at least one decision about what they changed."""
    coverage: Coverage = attrs.field(factory=Coverage)
    """What the run exercised: uses per route, token state and fault, judged or not."""

    def merge(self, other: RunReport) -> RunReport:
        """This report and ``other`` together (a stateful test sums its examples)."""
        recovery = {k: tuple(v) for k, v in self.recovery.items()}
        after = {k: tuple(v) for k, v in self.after.items()}
        for kind, times in other.recovery.items():
            recovery[kind] = recovery.get(kind, ()) + tuple(times)
        for kind, seconds in other.after.items():
            after[kind] = after.get(kind, ()) + tuple(seconds)
        calls = {route: dict(statuses) for route, statuses in self.calls.items()}
        for route, statuses in other.calls.items():
            mine = calls.setdefault(route, {})
            for status, n in statuses.items():
                mine[status] = mine.get(status, 0) + n
        return RunReport(
            recovery,
            after,
            self.baseline + other.baseline,
            calls,
            self.judged + other.judged,
            self.faults + other.faults,
            self.faults_followed + other.faults_followed,
            self.coverage.merge(other.coverage),
        )

    def as_dict(self) -> dict[str, object]:
        """The report as data: per kind, faults, recovered, recovery median and max (clock
        seconds), latency p50/p99 after the fault; and the baseline latency p50/p99."""
        kinds = sorted(set(self.recovery) | set(self.after))
        rows = {}
        for kind in kinds:
            times = [t for t in self.recovery.get(kind, ()) if t is not None]
            rows[kind] = {
                "faults": len(self.recovery.get(kind, ())),
                "recovered": len(times),
                "recovery_median_s": statistics.median(times) if times else None,
                "recovery_max_s": max(times) if times else None,
                "latency_after_ms": _quantiles(self.after.get(kind, ())),
            }
        return {
            "faults": rows,
            "latency_baseline_ms": _quantiles(self.baseline),
            "judged": self.judged,
            "coverage": self.coverage.to_json(),
        }

    def format(self) -> str:
        """A small table, one line per fault kind; then the coverage table."""
        data = self.as_dict()
        base = data["latency_baseline_ms"]
        assert isinstance(base, dict)
        lines = [
            "fault kind     faults  recovered  recovery median/max (s)  latency p50/p99 (ms)",
            f"{'(no fault)':<14} {'':>6}  {'':>9}  {'':>23}  {_pair(base)}",
        ]
        faults = data["faults"]
        assert isinstance(faults, dict)
        for kind, row in faults.items():
            recovery = (
                f"{row['recovery_median_s']:.1f} / {row['recovery_max_s']:.1f}"
                if row["recovered"]
                else "-"
            )
            lines.append(
                f"{kind:<14} {row['faults']:>6}  {row['recovered']:>9}  {recovery:>23}  "
                f"{_pair(row['latency_after_ms'])}"
            )
        return "\n".join(lines) + "\n\n" + self.coverage.format()


def _quantiles(seconds: Iterable[float]) -> dict[str, float | None]:
    values = sorted(seconds)
    if not values:
        return {"p50": None, "p99": None}

    def pick(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    return {"p50": pick(0.5), "p99": pick(0.99)}


def _pair(quantiles: object) -> str:
    assert isinstance(quantiles, dict)
    if quantiles["p50"] is None:
        return "-"
    return f"{quantiles['p50']:.1f} / {quantiles['p99']:.1f}"


def report(
    ledger: Ledger,
    entries: Iterable[Decision | AppliedFault],
    *,
    policy: Policy | None = None,
    required_scopes: Mapping[str, Collection[str]] | None = None,
    hostile: Mapping[str, Forged] | Collection[str] = (),
    since: int = 0,
) -> RunReport:
    """The report for one run's history (``proxy.history.entries``) and ledger; faults act on
    ledger events after event ``since`` (a stateful test's earlier examples share the
    ledger). ``hostile`` names the hostile tokens the run submitted, as :func:`check` takes
    them (their uses are judged by what accepting them would mean)."""
    if not isinstance(ledger, Ledger):
        raise InvalidArgument(f"ledger={ledger!r} must be a Ledger")
    policy = policy if policy is not None else Policy()
    needs = required_scopes or {}
    ordered = list(entries)
    decisions = [e for e in ordered if isinstance(e, Decision) and e.fingerprint is not None]
    recovery: dict[str, list[float | None]] = {}
    after: dict[str, list[float]] = {}
    paid: set[int] = set()
    changes = _changes_by_time(ledger.events_since(since))
    faults = followed = 0
    for fault in (e for e in ordered if isinstance(e, AppliedFault) and e.applied):
        kind = fault.fault.kind
        touched = _touched(ledger, changes.get(fault.at, ()))
        later = [
            d
            for d in decisions
            if d.seq > fault.seq and (touched is None or d.fingerprint in touched)
        ]
        faults += 1
        followed += bool(later)
        first = next((d for d in later if _correct(ledger, d, policy, needs)), None)
        recovery.setdefault(kind, []).append(None if first is None else first.at - fault.at)
        cost = [d for d in decisions if d.seq > fault.seq][:_AFTER]
        after.setdefault(kind, []).extend(d.latency for d in cost)
        paid.update(d.seq for d in cost)
    baseline = tuple(d.latency for d in decisions if d.seq not in paid)
    calls: dict[str, dict[int, int]] = {}
    for decision in decisions:
        route = f"{decision.method} {decision.path}"
        statuses = calls.setdefault(route, {})
        statuses[decision.status] = statuses.get(decision.status, 0) + 1
    findings = (
        {fp: what.finding for fp, what in hostile.items()}
        if isinstance(hostile, Mapping)
        else dict.fromkeys(hostile, "forgery")
    )
    covered = coverage(
        ledger,
        decisions,
        [e for e in ordered if isinstance(e, AppliedFault)],
        policy=policy,
        needs=needs,
        hostile=findings,
        since=since,
    )
    return RunReport(
        {k: tuple(v) for k, v in recovery.items()},
        {k: tuple(v) for k, v in after.items()},
        baseline,
        calls,
        covered.judged,
        faults,
        followed,
        covered,
    )


def _changes_by_time(events: Iterable[LedgerEvent]) -> dict[float, list[str]]:
    """The grants each instant's revocations, expiries, key withdrawals and narrowings
    changed."""
    changed: dict[float, list[str]] = {}
    for event in events:
        if isinstance(event, Revoked | Expired | KeyWithdrawn):
            changed.setdefault(event.at, []).extend(event.grant_ids)
        elif isinstance(event, Narrowed):
            changed.setdefault(event.at, []).append(event.grant_id)
    return changed


def _touched(ledger: Ledger, grants: Iterable[str]) -> frozenset[str] | None:
    """Fingerprints of every token of the grants a fault changed; None: it changed no grant
    (keys, an endpoint), so every later decision tells whether the service copes."""
    ids = set(grants)
    if not ids:
        return None
    return frozenset(fp for g in ids for fp in ledger.get_grant(g).fingerprints)


def _correct(
    ledger: Ledger, decision: Decision, policy: Policy, needs: Mapping[str, Collection[str]]
) -> bool:
    """Whether the decision matches the exact truth (no staleness allowed), on a route the
    token was issued for."""
    assert decision.fingerprint is not None
    record = ledger.lookup(decision.fingerprint)
    if decision.status >= 500 or record is None:
        return False
    route = f"{decision.method} {decision.path}"
    needed = frozenset(needs.get(route, needs.get(decision.path, ())))
    if not needed <= record.token.scopes:
        return False  # refused for a scope it never had: tells nothing about the fault
    verdict = ledger.verdict(
        decision.fingerprint, at=decision.at, scopes=needed, leeway=policy.leeway
    )
    if verdict.outcome is Outcome.MUST_ALLOW:
        return decision.accepted
    if verdict.outcome is Outcome.MUST_DENY:
        return decision.status in (401, 403)
    return False
