"""The coverage report (#18 point 2): every use a service answered falls in one cell of route x
token state x the fault that last acted on its token, counted as judged, inside the policy's
windows, or 5xx; printed with the run report, written as JSON, drawn in the repro notebook;
a required cell left empty fails the run."""

from __future__ import annotations

import functools
import json
from typing import Any, ClassVar

import pytest

from jitchaos import AuthChaosMachine, Policy
from jitchaos._coverage import TOKEN_STATES, Coverage, CoverageCell
from jitchaos._run import run_scenario
from jitchaos.errors import InvalidArgument
from jitchaos.known_bugs import permission_cache
from tests.common.cli import run_cli

ROUTES = {"GET /read": {"read"}, "POST /write": {"write"}}


class Picks:
    """A stand-in for ``st.data()`` that hands out chosen values in order."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return self.values.pop(0)


class Fixed(AuthChaosMachine):
    service = staticmethod(functools.partial(permission_cache.make_app, fixed=True))
    routes: ClassVar = ROUTES
    policy = Policy(staleness=30)


def test_each_use_falls_in_the_cell_of_its_token_state_and_fault() -> None:
    machine = Fixed()
    try:
        first = machine.grant(Picks(frozenset({"read", "write"}), "GET /read"))
        machine.narrow(first, Picks(frozenset({"read"})))
        machine.call(first)  # inside the 30 s staleness: write either way, read must pass
        machine.advance(Picks(31))  # past it: write must be refused
        second = machine.grant(Picks(frozenset({"read", "write"}), "POST /write"))
        machine.revoke(second, False)
        machine.call(second)  # inside the window
        machine.advance(Picks(31))  # past it
        machine.outage(Picks("introspection"), 5)
        machine.call(second)  # the service cannot introspect: 5xx
        machine.rotate_keys("add")
        machine.rotate_keys("remove-old")  # the first token's key leaves the key set
        machine.advance(Picks(31))  # both tokens used again, past every window
        found = machine.example_report()
        assert not machine.violations()
    finally:
        machine.teardown()
    cells = found.coverage.cells
    assert cells[("GET /read", "fresh", "none")] == (1, 0, 0)
    # The narrowed token: read determinate at once, write only past the staleness window.
    assert cells[("GET /read", "narrowed", "narrow")] == (3, 0, 0)
    assert cells[("POST /write", "narrowed", "narrow")] == (2, 1, 0)
    # The subject's next token carries write again: a role widened back.
    assert cells[("POST /write", "widened", "none")] == (1, 0, 0)
    assert cells[("GET /read", "revoked", "revoke")] == (1, 1, 0)
    assert cells[("POST /write", "revoked", "revoke")] == (1, 1, 0)
    # During the outage: the latest fault that acted on every token, answered 5xx.
    assert cells[("GET /read", "revoked", "outage")] == (0, 0, 1)
    assert cells[("GET /read", "rotated-key", "rotate_keys")] == (1, 0, 0)
    assert cells[("POST /write", "rotated-key", "rotate_keys")] == (1, 0, 0)
    assert found.judged == found.coverage.judged == 13
    assert found.coverage.unexercised() == ["refreshed", "expired", "hostile"]
    text = found.format()
    assert "coverage (uses per route, token state and the fault that last acted on it)" in text
    assert "POST /write  narrowed     narrow" in text
    assert "never judged in any cell: refreshed, expired, hostile" in text
    data = found.as_dict()
    assert data["judged"] == 13
    assert {
        "route": "POST /write",
        "state": "narrowed",
        "fault": "narrow",
        "judged": 2,
        "in_window": 1,
        "5xx": 0,
    } in data["coverage"]  # type: ignore[operator]
    assert Coverage.from_json(data["coverage"]) == found.coverage
    # The class sums its examples.
    assert Fixed.report().coverage.count(CoverageCell.parse("narrowed")) >= 5


class Everything(AuthChaosMachine):
    """Every rule a service machine has, so every token state is reached."""

    routes: ClassVar = ROUTES
    policy = Policy(staleness=5)


def test_a_run_over_every_rule_covers_every_state_and_writes_it_as_json() -> None:
    outcome = run_scenario(
        Everything,
        service=functools.partial(permission_cache.make_app, fixed=True),
        examples=120,
        require_coverage=["hostile", "refreshed", "expired:expire", "revoked:*:POST /write"],
    )
    assert outcome.failure is None, outcome.format()
    covered = outcome.report.coverage
    for state in TOKEN_STATES:
        if state not in ("widened", "rotated-key"):  # rare draws: the test above has them
            assert covered.count(CoverageCell(state)), (state, covered.format())
    data = json.loads(json.dumps(outcome.to_json()))
    assert data["verdict"] == "no violation"
    assert data["report"]["judged"] == covered.judged > 0
    assert Coverage.from_json(data["report"]["coverage"]) == covered
    assert "coverage (uses per route" in outcome.format()


def test_a_required_cell_left_empty_fails_the_run_and_names_it() -> None:
    class GrantsOnly(AuthChaosMachine):
        routes: ClassVar = ROUTES
        actions = frozenset({"grant", "call"})

    outcome = run_scenario(
        GrantsOnly,
        service=functools.partial(permission_cache.make_app, fixed=True),
        examples=15,
        require_coverage=["fresh", "revoked:revoke"],
    )
    assert outcome.vacuous
    assert outcome.failure is not None
    assert "no use was judged in the required coverage cell revoked:revoke:*" in outcome.failure
    assert "judged no use of a refreshed, narrowed" in outcome.failure
    assert outcome.to_json()["verdict"] == "no verdict"

    class Wrong(GrantsOnly):
        require_coverage = "revoked"

    with pytest.raises(InvalidArgument, match="must be a collection of cells"):
        Wrong.run(quiet=True, notebooks=None)
    assert Wrong not in Wrong._worlds  # refused before anything started


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"must be 'STATE\[:FAULT\[:ROUTE\]\]'"),
        ("stale", "'stale' is no token state"),
        ("revoked:revocation", "'revocation' is no fault kind"),
        ("revoked:revoke:/read", "the route must be 'METHOD /path'"),
    ],
)
def test_bad_cells_are_named(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        CoverageCell.parse(text)


def test_cells_match_by_part() -> None:
    assert CoverageCell.parse("revoked") == CoverageCell("revoked", "*", "*")
    assert CoverageCell.parse("*:outage:GET /read") == CoverageCell("*", "outage", "GET /read")
    cell = CoverageCell.parse("revoked:revoke")
    assert cell.holds("GET /read", "revoked", "revoke")
    assert not cell.holds("GET /read", "revoked", "outage")
    assert not cell.holds("GET /read", "expired", "revoke")
    both = Coverage({("GET /read", "fresh", "none"): (2, 1, 0)}).merge(
        Coverage(
            {("GET /read", "fresh", "none"): (1, 0, 3), ("GET /a", "hostile", "none"): (1, 0, 0)}
        )
    )
    assert both.cells[("GET /read", "fresh", "none")] == (3, 1, 3)
    assert both.judged == 4
    assert both.missing([CoverageCell("hostile"), CoverageCell("revoked")]) == [
        CoverageCell("revoked")
    ]
    for bad in ({"route": 1}, [{"route": "GET /", "state": "fresh"}], [1]):
        with pytest.raises(InvalidArgument):
            Coverage.from_json(bad)
    assert Coverage().format() == "coverage: no use of a token reached a service"


def test_the_coverage_plot_writes_each_cell() -> None:
    import matplotlib

    matplotlib.use("Agg")
    ax = Coverage(
        {("GET /read", "revoked", "revoke"): (3, 2, 0), ("GET /read", "fresh", "none"): (1, 0, 0)}
    ).plot()
    labels = sorted(text.get_text() for text in ax.texts)
    assert labels == ["1", "3 +2"]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["none", "revoke"]
    assert [tick.get_text() for tick in ax.get_yticklabels()] == list(TOKEN_STATES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--require-coverage", "stale"], "'stale' is no token state"),
        (["--report", "/nonexistent/dir/report.json"], "there is no directory"),
    ],
)
def test_bad_coverage_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_cli(
        "run", "strategies/role_narrowing.py", "--service", "http://127.0.0.1:9", *args
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_fault_is_credited_by_the_ledger_events_it_recorded_not_by_their_instant() -> None:
    """On the wall clock the fault's record and its ledger event read the clock apart (3e-5 s):
    matching them by instant credited no revoke to any use (a revoked:revoke cell could never
    fill). The fault's record says which ledger events it made."""
    from jitchaos import Decision, GrantRequest, Ledger, ManualClock, Principal
    from jitchaos._coverage import coverage
    from jitchaos._history import AppliedFault
    from jitchaos.faults import Revoke

    ledger = Ledger(ManualClock(start=1000))
    granted = GrantRequest(
        principal=Principal.client("c"), client_id="c", scopes={"read"}, lifetime=300
    ).record(ledger)
    fp = granted.tokens[0].fingerprint
    first = ledger.seq
    revoked = ledger.revoke(token=fp)
    assert revoked is not None
    fault = AppliedFault(
        seq=1,
        at=revoked.at + 3e-5,
        step=0,
        fault=Revoke(target=f"token:{fp}"),
        trigger="now",
        applied=True,
        detail="",
        ledger_span=(first, ledger.seq),
    )
    use = Decision(
        seq=2,
        at=revoked.at + 1,
        step=0,
        service="api",
        method="GET",
        path="/read",
        fingerprint=fp,
        status=401,
        ledger_seq=ledger.seq,
    )
    covered = coverage(ledger, [use], [fault], policy=Policy(), needs=ROUTES, hostile={})
    assert covered.cells == {("GET /read", "revoked", "revoke"): (1, 0, 0)}
    assert AppliedFault.from_json(fault.to_json()) == fault
