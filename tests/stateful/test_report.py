"""The run report measures recovery on the driven clock and latency through the proxy."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st

from jitchaos import AuthChaosMachine, Policy, RunReport
from jitchaos.known_bugs import introspection_cache


class Picks:
    """A stand-in for ``st.data()`` that hands out chosen values in order."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: st.SearchStrategy[Any], label: str | None = None) -> Any:
        return self.values.pop(0)


class Cached(AuthChaosMachine):
    service = staticmethod(functools.partial(introspection_cache.make_app, fixed=True))
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}, "POST /write": {"write"}}
    policy = Policy(staleness=30)


def test_recovery_is_the_cache_lifetime_and_latency_is_measured() -> None:
    machine = Cached()
    try:
        token = machine.grant(Picks(frozenset({"read"}), "GET /read"))
        machine.revoke(token, whole_grant=False)
        machine.advance(Picks(5))  # still cached: allowed, which the exact truth calls wrong
        machine.advance(Picks(6))  # the 10 s cache entry is gone: refused
        found = machine.example_report()
    finally:
        machine.teardown()
    (recovery,) = found.recovery["revoke"]
    assert recovery is not None
    assert 10 < recovery < 11.1  # from the revocation to the first refusal
    assert len(found.after["revoke"]) == 4  # the four calls after it (two routes, twice)
    assert all(0 < seconds < 5 for seconds in found.after["revoke"])
    assert len(found.baseline) == 1  # the grant's own first use
    data = found.as_dict()
    row = data["faults"]["revoke"]  # type: ignore[index]
    assert row["faults"] == 1
    assert row["recovered"] == 1
    text = found.format()
    assert "revoke" in text
    assert "recovery" in text
    # The class accumulates its examples' reports.
    assert Cached.report().recovery["revoke"] == (recovery,)


def test_a_fault_with_no_correct_decision_after_it_has_no_recovery_time() -> None:
    machine = Cached()
    try:
        token = machine.grant(Picks(frozenset({"read"}), "GET /read"))
        machine.revoke(token, whole_grant=False)
        machine.advance(Picks(5))
        found = machine.example_report()
    finally:
        machine.teardown()
    assert found.recovery["revoke"] == (None,)
    assert found.as_dict()["faults"]["revoke"]["recovered"] == 0  # type: ignore[index]


def test_merging_adds_up() -> None:
    one = RunReport({"revoke": (1.0,)}, {"revoke": (0.01,)}, (0.002,))
    two = RunReport({"revoke": (None,), "narrow": (3.0,)}, {}, (0.003,))
    both = one.merge(two)
    assert both.recovery == {"revoke": (1.0, None), "narrow": (3.0,)}
    assert both.baseline == (0.002, 0.003)
    assert RunReport().format().splitlines()[0].startswith("fault kind")


def test_bad_ledger_is_named() -> None:
    from jitchaos import report
    from jitchaos.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="ledger="):
        report("not a ledger", [])  # type: ignore[arg-type]
