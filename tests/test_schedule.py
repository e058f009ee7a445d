from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitchaos import AtStep, AtTime, InvalidArgument, OnEvent, OnRequest, Schedule, Scheduled
from jitchaos.faults import FAULTS, Expire, Narrow, Outage, Revoke


def test_same_seed_same_schedule() -> None:
    kinds = ["expire", "revoke", "narrow"]
    first = Schedule.from_seed(42, rate=0.1, faults=kinds, requests=200)
    assert first == Schedule.from_seed(42, rate=0.1, faults=kinds, requests=200)
    assert first != Schedule.from_seed(43, rate=0.1, faults=kinds, requests=200)
    assert {e.fault.kind for e in first.entries} == set(kinds)
    assert 20 <= len(first) <= 100  # about 0.1 of 600 requests


@given(
    seed=st.integers(),
    rate=st.floats(0, 1),
    kinds=st.lists(st.sampled_from(sorted(FAULTS)), min_size=1, unique=True),
)
def test_seeded_schedules_are_deterministic_and_valid(
    seed: int, rate: float, kinds: list[str]
) -> None:
    schedule = Schedule.from_seed(seed, rate=rate, faults=kinds, requests=20)
    assert schedule == Schedule.from_seed(seed, rate=rate, faults=kinds, requests=20)
    assert all(e.fault.kind in kinds for e in schedule.entries)
    assert Schedule.from_json(json.loads(json.dumps(schedule.to_json()))) == schedule


def test_rate_bounds() -> None:
    assert len(Schedule.from_seed(1, rate=0, faults=["expire"], requests=50)) == 0
    assert (
        len(Schedule.from_seed(1, rate=1, faults=["expire"], requests=50, endpoints=["token"]))
        == 50
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate": 2}, "rate"),
        ({"rate": 0.1, "faults": ["meteor"]}, "faults"),
        ({"rate": 0.1, "faults": []}, "faults"),
        ({"rate": 0.1, "requests": 0}, "requests"),
        ({"rate": 0.1, "endpoints": ["db"]}, "endpoints"),
        ({"rate": 0.1, "faults": "expire"}, "faults='expire' must be a list of fault kinds"),
        ({"rate": 0.1, "faults": None}, "faults=None must be a list of fault kinds"),
        ({"rate": 0.1, "endpoints": None}, "endpoints=None must be a list"),
    ],
)
def test_from_seed_refuses_bad_arguments(kwargs: dict[str, object], name: str) -> None:
    arguments: dict[str, object] = {"faults": ["expire"], **kwargs}
    with pytest.raises(InvalidArgument, match=name):
        Schedule.from_seed(1, **arguments)  # type: ignore[arg-type]


def test_json_round_trip_of_every_trigger() -> None:
    schedule = Schedule(
        (
            Scheduled(AtStep(3), Revoke(target="grant:g1")),
            Scheduled(OnRequest("token", 2), Expire(issued_ttl=5)),
            Scheduled(AtTime(1_800_000_000.5), Narrow(scopes=frozenset({"read"}))),
            Scheduled(OnEvent("first-use"), Outage(endpoint="jwks", mode="empty-keys")),
        )
    )
    text = json.dumps(schedule.to_json())
    assert Schedule.loads(text) == schedule
    assert json.loads(text)[2]["fault"] == {
        "kind": "narrow",
        "scopes": ["read"],
        "target": "request",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("{}", "JSON list"),
        ('[{"trigger": {"type": "at_step", "step": 1}}]', "trigger and fault"),
        ('[{"trigger": {"type": "sometime"}, "fault": {"kind": "expire"}}]', "unknown trigger"),
        ('[{"trigger": {"type": "at_step", "step": 0}, "fault": {"kind": "expire"}}]', "step"),
        (
            '[{"trigger": {"type": "at_step", "step": 1}, "fault": {"kind": "meteor"}}]',
            "unknown fault kind 'meteor'",
        ),
        (
            '[{"trigger": {"type": "at_step", "step": 1}, "fault": {"kind": "expire", "x": 1}}]',
            "unexpected keyword",
        ),
        (
            '[{"trigger": {"type": "on_request", "endpoint": "db", "n": 1}, '
            '"fault": {"kind": "expire"}}]',
            "endpoint",
        ),
        ("[" * 100_000, "nests arrays or objects too deeply"),
        (
            '[{"trigger": {"type": "at_step", "step": 1}, '
            '"fault": {"kind": "expire", "issued_ttl": true}}]',
            "issued_ttl=True must be a int",
        ),
        (
            '[{"trigger": {"type": "at_step", "step": 1}, '
            '"fault": {"kind": "hold_refresh", "count": 2.0}}]',
            "count=2.0 must be a int",
        ),
    ],
)
def test_bad_schedule_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Schedule.loads(text)


def test_iterators_are_read_once_and_wrong_types_are_named() -> None:
    once = Schedule.from_seed(1, rate=0.5, faults=iter(["expire"]), requests=5)  # type: ignore[arg-type]
    assert once == Schedule.from_seed(1, rate=0.5, faults=["expire"], requests=5)
    with pytest.raises(InvalidArgument, match="a schedule's text is a str, not NoneType"):
        Schedule.loads(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="the schedule is not JSON"):
        Schedule.loads(b"\xff")
    for entries in (None, 5, "x"):
        with pytest.raises(InvalidArgument, match="must be a sequence of Scheduled values"):
            Schedule(entries)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="trigger=3 must be a AtStep or OnRequest"):
        Scheduled(3, Expire())  # type: ignore[arg-type]
