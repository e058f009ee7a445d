"""schedules() and policies(): valid values, shrinking to the fault that matters, and
st.from_type for policies and faults."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from jitchaos import AtStep, InvalidArgument, OnRequest, Policy, Schedule
from jitchaos.faults import Expire, Outage, Revoke
from jitchaos.strategies import faults, policies, schedules


@settings(max_examples=100)
@given(schedules())
def test_schedules_round_trip_through_json(schedule: Schedule) -> None:
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert len(schedule) <= 5


def test_schedules_shrink_to_the_single_fault_that_matters_fired_late() -> None:
    # The "bug": a revocation anywhere in the schedule. Everything else is noise.
    schedule = find(
        schedules(horizon=40, max_size=8),
        lambda s: any(isinstance(e.fault, Revoke) for e in s.entries) and len(s) >= 1,
        settings=settings(max_examples=2000, derandomize=True, database=None),
    )
    (entry,) = schedule.entries  # the other faults are gone
    assert isinstance(entry.fault, Revoke)
    assert entry.fault.delay == 0
    assert entry.trigger == AtStep(40)  # moved as late as the horizon allows


def test_schedules_shrink_keeps_what_is_needed() -> None:
    # Two faults together cause the failure: shrinking keeps exactly those two.
    schedule = find(
        schedules(max_size=8),
        lambda s: {type(e.fault) for e in s.entries} >= {Expire, Outage},
        settings=settings(max_examples=3000, derandomize=True, database=None),
    )
    assert sorted(type(e.fault).__name__ for e in schedule.entries) == ["Expire", "Outage"]


@settings(max_examples=50)
@given(schedules(triggers=st.builds(OnRequest, st.just("jwks"), st.integers(1, 3)), min_size=1))
def test_schedules_with_given_triggers(schedule: Schedule) -> None:
    assert all(isinstance(e.trigger, OnRequest) for e in schedule.entries)
    assert len(schedule) >= 1


@settings(max_examples=100)
@given(policies())
def test_policies_are_valid(policy: Policy) -> None:
    assert policy.staleness >= 0
    assert policy.max_lifetime is None or policy.max_lifetime >= 60


def test_policies_shrink_to_the_strictest() -> None:
    assert find(policies(), lambda p: True) == Policy()


@settings(max_examples=50)
@given(st.from_type(Policy))
def test_from_type_builds_valid_policies(policy: Policy) -> None:
    assert isinstance(policy, Policy)


@settings(max_examples=50)
@given(st.builds(Policy))
def test_builds_infers_valid_policies(policy: Policy) -> None:
    assert policy.leeway >= 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"staleness": -1}, "staleness=-1"),
        ({"leeway": float("nan")}, "leeway=nan"),
        ({"max_lifetime": 0}, "max_lifetime=0"),
        ({"key_staleness": "5"}, "key_staleness='5'"),
    ],
)
def test_bad_policies_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        Policy(**kwargs)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (schedules, {"faults": Revoke()}, "faults=Revoke("),
        (schedules, {"max_size": -1}, "max_size=-1"),
        (schedules, {"min_size": 3, "max_size": 2}, "max_size=2 is less than min_size=3"),
        (schedules, {"horizon": 0}, "horizon=0"),
        (policies, {"leeway": 5}, "leeway=5 must be a strategy"),
        (faults, {"kinds": ["meteor"]}, "kinds=['meteor']"),
    ],
)
def test_bad_arguments_are_named(factory: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        factory(**kwargs)


def test_every_public_strategy_says_how_it_shrinks() -> None:
    import inspect

    import jitchaos.strategies as public

    for name in public.__all__:
        value = getattr(public, name)
        if not inspect.isfunction(value):
            continue
        doc = inspect.getdoc(value) or ""
        last = doc.strip().split("\n\n")[-1]
        assert last.startswith("Shrinks"), f"{name}: {last!r}"
        parameters = inspect.signature(value).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters), name
