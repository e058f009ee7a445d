"""The coverage report: what a run actually exercised, and what the checker could judge of it.

Every use of a token a service answered falls in one cell: its route, the state its token was
in at that instant, and the fault that last acted on that token. A cell counts the uses the
checker could judge (determinate: must-allow or must-deny under the policy), the uses that fell
inside the policy's windows (indeterminate: either answer is correct), and the 5xx answers
(judged neither way). A run that never used a revoked token, or never after a key rotation, has
judged nothing about it, whatever it says about the rest; the report says so, and
``require_coverage`` (``jitchaos run --require-coverage``) fails a run that left a cell empty.

Token states, in order of precedence (a revoked token that had been narrowed is ``revoked``):

- ``hostile``: not a token the IdP issued (a forgery), or a submitted hostile token;
- ``revoked``: revoked before the use; ``rotated-key``: the key that signed it was withdrawn;
- ``expired``: past its ``exp``, or expired early by a fault;
- ``narrowed``: it carries a scope its grant no longer allows;
- ``widened``: its grant was widened before the use, or it carries a scope taken from an
  earlier grant of the same subject (a role change: the subject's next token is wider again);
- ``refreshed``: issued by a refresh; ``fresh``: issued by the grant itself.

The fault of a use is the kind of the latest applied fault before it that acted on its token
(a revoke, expire or narrow of its grant; a key withdrawal that took its key) or on every token
(an outage, latency, clock skew, held refreshes, a rotation that withdrew nothing); ``none``
when no fault did.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import attrs

from jitchaos._history import AppliedFault, Decision
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._records import (
    Expired,
    KeyWithdrawn,
    LedgerEvent,
    Narrowed,
    Outcome,
    Refreshed,
    Revoked,
    Widened,
)
from jitchaos.errors import InvalidArgument
from jitchaos.faults import FAULTS

__all__ = ["NO_FAULT", "TOKEN_STATES", "Coverage", "CoverageCell", "coverage"]

TOKEN_STATES = (
    "fresh",
    "refreshed",
    "narrowed",
    "widened",
    "revoked",
    "expired",
    "rotated-key",
    "hostile",
)
NO_FAULT = "none"

_TARGETED: Mapping[str, type[LedgerEvent]] = {
    "revoke": Revoked,
    "expire": Expired,
    "narrow": Narrowed,
    "rotate_keys": KeyWithdrawn,
}
"""Fault kinds that act on some grants, by the ledger event that says which."""


@attrs.frozen
class CoverageCell:
    """A cell a run must have judged a use in: ``STATE[:FAULT[:ROUTE]]``, each part ``*`` (or
    left out) for any (``revoked``, ``revoked:revoke``, ``*:outage:GET /read``)."""

    state: str = "*"
    fault: str = "*"
    route: str = "*"

    @classmethod
    def parse(cls, text: object) -> CoverageCell:
        """The cell ``text`` names; InvalidArgument naming what is wrong."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(
                f"coverage cell {text!r} must be 'STATE[:FAULT[:ROUTE]]' (e.g. 'revoked:revoke')"
            )
        parts = [part.strip() or "*" for part in text.split(":", 2)]
        cell = cls(*parts)
        if cell.state != "*" and cell.state not in TOKEN_STATES:
            raise InvalidArgument(
                f"coverage cell {text!r}: {cell.state!r} is no token state "
                f"({', '.join(TOKEN_STATES)} or *)"
            )
        kinds = (*FAULTS, NO_FAULT)
        if cell.fault != "*" and cell.fault not in kinds:
            raise InvalidArgument(
                f"coverage cell {text!r}: {cell.fault!r} is no fault kind "
                f"({', '.join(kinds)} or *)"
            )
        if cell.route != "*" and len(cell.route.split()) != 2:
            raise InvalidArgument(f"coverage cell {text!r}: the route must be 'METHOD /path'")
        return cell

    def holds(self, route: str, state: str, fault: str) -> bool:
        return (
            self.state in ("*", state)
            and self.fault in ("*", fault)
            and (self.route == "*" or self.route == route)
        )

    def __str__(self) -> str:
        return ":".join((self.state, self.fault, self.route))


@attrs.frozen
class Coverage:
    """Per ``(route, token state, fault kind)``: ``(judged, in a window, 5xx)`` uses."""

    cells: Mapping[tuple[str, str, str], tuple[int, int, int]] = attrs.field(factory=dict)

    def merge(self, other: Coverage) -> Coverage:
        cells = dict(self.cells)
        for key, counts in other.cells.items():
            mine = cells.get(key, (0, 0, 0))
            cells[key] = (mine[0] + counts[0], mine[1] + counts[1], mine[2] + counts[2])
        return Coverage(cells)

    @property
    def judged(self) -> int:
        """Uses the checker could judge, over every cell."""
        return sum(judged for judged, _, _ in self.cells.values())

    def count(self, cell: CoverageCell) -> int:
        """Judged uses in the cells ``cell`` matches."""
        return sum(n[0] for key, n in self.cells.items() if cell.holds(*key))

    def missing(self, required: Iterable[CoverageCell]) -> list[CoverageCell]:
        """The required cells no judged use fell in."""
        return [cell for cell in required if not self.count(cell)]

    def unexercised(self) -> list[str]:
        """Token states no use was judged in, on any route or fault."""
        seen = {state for (_, state, _), n in self.cells.items() if n[0]}
        return [state for state in TOKEN_STATES if state not in seen]

    def to_json(self) -> list[dict[str, Any]]:
        """One object per cell that saw a use, in table order."""
        return [
            {
                "route": route,
                "state": state,
                "fault": fault,
                "judged": n[0],
                "in_window": n[1],
                "5xx": n[2],
            }
            for (route, state, fault), n in sorted(self.cells.items(), key=_order)
        ]

    @classmethod
    def from_json(cls, data: object) -> Coverage:
        """What :meth:`to_json` wrote; InvalidArgument naming what is wrong."""
        if not isinstance(data, list):
            raise InvalidArgument("coverage must be a list of cells")
        cells: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        for row in data:
            try:
                key = (row["route"], row["state"], row["fault"])
                counts = (row["judged"], row["in_window"], row["5xx"])
            except (TypeError, KeyError):
                raise InvalidArgument(f"coverage cell {row!r} is not a cell") from None
            if not all(isinstance(k, str) for k in key) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts
            ):
                raise InvalidArgument(f"coverage cell {row!r} is not a cell")
            cells[key] = counts
        return cls(cells)

    def format(self) -> str:
        """A table, one line per cell that saw a use; then the token states never judged."""
        if not self.cells:
            return "coverage: no use of a token reached a service"
        rows = [("route", "token state", "fault", "judged", "in window", "5xx")]
        for (route, state, fault), n in sorted(self.cells.items(), key=_order):
            rows.append((route, state, fault, str(n[0]), str(n[1]), str(n[2])))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = ["coverage (uses per route, token state and the fault that last acted on it):"]
        for row in rows:
            left = "  ".join(row[i].ljust(widths[i]) for i in range(3))
            right = "  ".join(row[i].rjust(widths[i]) for i in range(3, 6))
            lines.append(f"  {left}  {right}")
        never = self.unexercised()
        if never:
            lines.append(f"  never judged in any cell: {', '.join(never)}")
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """A heat map per run: token states down, fault kinds across (routes summed), each
        cell's judged uses written in it (``+N``: N more in a window); empty cells stay
        white. Returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        faults = sorted({fault for _, _, fault in self.cells}, key=_fault_order) or [NO_FAULT]
        grid = [[0] * len(faults) for _ in TOKEN_STATES]
        window = [[0] * len(faults) for _ in TOKEN_STATES]
        for (_, state, fault), n in self.cells.items():
            row, column = TOKEN_STATES.index(state), faults.index(fault)
            grid[row][column] += n[0]
            window[row][column] += n[1]
        if ax is None:
            _, ax = plt.subplots(figsize=(1.6 + 1.1 * len(faults), 3.6))
        ax.imshow(grid, cmap="Greens", vmin=0, vmax=max(1, *(max(r) for r in grid)))
        for row in range(len(TOKEN_STATES)):
            for column in range(len(faults)):
                judged, inside = grid[row][column], window[row][column]
                if judged or inside:
                    label = str(judged) + (f" +{inside}" if inside else "")
                    ax.text(column, row, label, ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(faults)), faults, rotation=30, ha="right")
        ax.set_yticks(range(len(TOKEN_STATES)), TOKEN_STATES)
        ax.set_title("judged uses by token state and fault (+N in a window)", pad=10)
        return ax


def _fault_order(fault: str) -> tuple[int, str]:
    return (0 if fault == NO_FAULT else 1, fault)


def _order(item: tuple[tuple[str, str, str], Any]) -> tuple[str, int, tuple[int, str]]:
    (route, state, fault), _ = item
    return (route, TOKEN_STATES.index(state), _fault_order(fault))


def coverage(
    ledger: Ledger,
    decisions: Sequence[Decision],
    faults: Sequence[AppliedFault],
    *,
    policy: Policy,
    needs: Mapping[str, Collection[str]],
    hostile: Mapping[str, str],
    since: int = 0,
) -> Coverage:
    """The coverage of ``decisions`` (uses with a token) under ``faults`` (applied ones), in
    ``ledger`` from event ``since``; ``hostile`` maps a submitted hostile token's fingerprint
    to its finding (``forgery``, ``confusion`` or ``profile``)."""
    events = ledger.events_since(since)
    refreshed = {t.fingerprint for e in events if isinstance(e, Refreshed) for t in e.tokens}
    widened: dict[str, float] = {}  # grant -> when it was first widened
    taken: list[tuple[float, Any, str, frozenset[str]]] = []  # (when, whose, grant, scopes)
    for event in events:
        if isinstance(event, Widened):
            widened.setdefault(event.grant_id, event.at)
        elif isinstance(event, Narrowed):
            whose = ledger.get_grant(event.grant_id).principal
            taken.append((event.at, whose, event.grant_id, event.previous - event.scopes))
    acted = _acted(events, faults)
    cells: dict[tuple[str, str, str], list[int]] = {}
    for decision in decisions:
        assert decision.fingerprint is not None
        record = ledger.lookup(decision.fingerprint)
        if record is None:
            state, grant_id = "hostile", None
            finding = hostile.get(decision.fingerprint, "forgery")
            determinate = finding != "profile" or policy.strict_profile
        else:
            state = _state(ledger, decision, record, refreshed, widened, taken)
            grant_id = record.grant_id
            determinate = _determinate(ledger, decision, policy, needs)
        fault = next(
            (
                kind
                for seq, kind, grants in reversed(acted)
                if seq < decision.seq and (grants is None or grant_id in grants)
            ),
            NO_FAULT,
        )
        counts = cells.setdefault((f"{decision.method} {decision.path}", state, fault), [0, 0, 0])
        if decision.status >= 500:
            counts[2] += 1
        elif determinate:
            counts[0] += 1
        else:
            counts[1] += 1
    return Coverage({key: (n[0], n[1], n[2]) for key, n in cells.items()})


def _acted(
    events: Sequence[LedgerEvent], faults: Iterable[AppliedFault]
) -> list[tuple[int, str, frozenset[str] | None]]:
    """Per applied fault, in order: its history position, kind, and the grants it acted on
    (the grants of the ledger events it recorded; for a record that does not say which,
    those of its kind at its instant); None: every token."""
    out: list[tuple[int, str, frozenset[str] | None]] = []
    for fault in faults:
        if not fault.applied:
            continue
        kind = fault.fault.kind
        grants: frozenset[str] | None = None
        event_type = _TARGETED.get(kind)
        if event_type is not None:
            span = fault.ledger_span
            changed = [
                e
                for e in events
                if isinstance(e, event_type)
                and (span[0] < e.seq <= span[1] if span is not None else e.at == fault.at)
            ]
            ids = {g for e in changed for g in _grants_of(e)}
            if ids or kind != "rotate_keys":
                grants = frozenset(ids)
        out.append((fault.seq, kind, grants))
    return out


def _grants_of(event: LedgerEvent) -> tuple[str, ...]:
    if isinstance(event, Narrowed):
        return (event.grant_id,)
    return tuple(getattr(event, "grant_ids", ()))


def _state(
    ledger: Ledger,
    decision: Decision,
    record: Any,
    refreshed: Collection[str],
    widened: Mapping[str, float],
    taken: Sequence[tuple[float, Any, str, frozenset[str]]],
) -> str:
    at = decision.at
    if record.revoked_at is not None and at >= record.revoked_at:
        return "revoked"
    if record.withdrawn_at is not None and at >= record.withdrawn_at:
        return "rotated-key"
    early = record.expired_at
    if at >= record.token.expires_at or (early is not None and at >= early):
        return "expired"
    grant = ledger.get_grant(record.grant_id)
    if not record.token.scopes <= grant.scopes_at(at):
        return "narrowed"
    if record.grant_id in widened and widened[record.grant_id] <= at:
        return "widened"
    issued = record.token.issued_at
    if any(  # a role change: the subject's next token carries scopes narrowed away before
        when <= issued
        and whose == record.principal
        and other != record.grant_id
        and scopes & record.token.scopes
        for when, whose, other, scopes in taken
    ):
        return "widened"
    if record.token.fingerprint in refreshed:
        return "refreshed"
    return "fresh"


def _determinate(
    ledger: Ledger, decision: Decision, policy: Policy, needs: Mapping[str, Collection[str]]
) -> bool:
    """Whether the ground truth is must-allow or must-deny for the use, under the policy's
    windows (else either answer is correct)."""
    assert decision.fingerprint is not None
    route = f"{decision.method} {decision.path}"
    needed = frozenset(needs.get(route, needs.get(decision.path, ())))
    verdict = ledger.verdict(
        decision.fingerprint,
        at=decision.at,
        scopes=needed,
        staleness=policy.staleness,
        leeway=policy.leeway,
        key_staleness=policy.key_staleness,
    )
    return verdict.outcome is not Outcome.EITHER
