"""A violation Hypothesis found but could not replay the same way (a system in its own process
keeps state between examples) is raised as that violation, with a note, not as ``Flaky``."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis.errors import Flaky
from hypothesis.stateful import RuleBasedStateMachine, rule

from jitchaos import ViolationFound
from jitchaos._runner import _unflaky, _violation_behind

QUICK = settings(max_examples=20, database=None, derandomize=True, deadline=None)


class _Stale(ViolationFound):
    pass


def test_a_violation_that_passes_on_replay_is_raised_as_found() -> None:
    calls = itertools.count()

    class OnceOnly(RuleBasedStateMachine):
        # Fails on the very first call of the run and never again: a cache the first example
        # filled and the replay found warm.
        @rule()
        def use(self) -> None:
            if next(calls) == 3:
                raise _Stale("[stale] token abc honoured 6 s after its revocation")

    with pytest.raises(_Stale) as raised:
        _unflaky(OnceOnly, QUICK)  # type: ignore[arg-type]
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "could not replay this failure the same way" in notes
    assert "Flaky" in notes
    assert not isinstance(raised.value, Flaky)


def test_a_violation_that_moves_on_replay_is_raised_as_found() -> None:
    calls = itertools.count()

    class Moving(RuleBasedStateMachine):
        # Fails at a later step each time it fails: the replay stops drawing at another point
        # (Hypothesis: "Data generation behaved differently between test cases").
        @rule(n=__import__("hypothesis").strategies.integers(0, 3))
        def use(self, n: int) -> None:
            if next(calls) >= 5:
                raise _Stale(f"[stale] seen at call {n}")

    with pytest.raises(_Stale):
        _unflaky(Moving, QUICK)  # type: ignore[arg-type]


def test_an_error_that_is_no_violation_stays_flaky() -> None:
    plain = Flaky("no violation behind this")
    assert _violation_behind(plain) is None
    wrapped = Flaky("replay differed")
    wrapped.__context__ = _Stale("[stale] x")
    found = _violation_behind(wrapped)
    assert isinstance(found, _Stale)
