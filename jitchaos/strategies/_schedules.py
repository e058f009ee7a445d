"""Strategies for schedules and policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import strategies as st

from jitchaos._policy import Policy
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._schedule import Schedule, Trigger
    from jitchaos.faults import AnyFault

__all__ = ["policies", "schedules"]


def _later(horizon: int) -> st.SearchStrategy[int]:
    # Hypothesis shrinks integers towards 0; counting back from the horizon makes a shrinking
    # schedule move its faults later, so the minimal failure perturbs as little as it can.
    return st.integers(0, horizon - 1).map(lambda back: horizon - back)


def schedules(
    *,
    faults: st.SearchStrategy[AnyFault] | None = None,
    triggers: st.SearchStrategy[Trigger] | None = None,
    min_size: int = 0,
    max_size: int = 5,
    horizon: int = 50,
) -> st.SearchStrategy[Schedule]:
    """Schedules of ``min_size`` to ``max_size`` (trigger, fault) entries.

    ``faults`` draws each fault (default: any registered fault); ``triggers`` draws when it
    fires (default: at a step, or on the n-th request to the token, introspection or JWKS
    endpoint, within ``horizon`` steps or requests).

    Shrinks by removing entries and by moving the default triggers later (towards
    ``horizon``), so a failure shrinks to the single fault that matters, fired as late as the
    failure allows.
    """
    for name, value in (("min_size", min_size), ("max_size", max_size), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name}={value!r} must be a non-negative integer")
    if max_size < min_size:
        raise InvalidArgument(f"max_size={max_size!r} is less than min_size={min_size!r}")
    if horizon < 1:
        raise InvalidArgument(f"horizon={horizon!r} must be at least 1")
    # Imported here: jitchaos.faults registers these strategies while _schedule is importing it.
    from jitchaos._schedule import AtStep, OnRequest, Schedule, Scheduled
    from jitchaos.strategies._faults import faults as any_faults

    for name, strategy in (("faults", faults), ("triggers", triggers)):
        if strategy is not None and not isinstance(strategy, st.SearchStrategy):
            raise InvalidArgument(f"{name}={strategy!r} must be a strategy")
    if triggers is None:
        triggers = st.one_of(
            _later(horizon).map(AtStep),
            st.builds(
                OnRequest,
                st.sampled_from(["token", "introspection", "jwks"]),
                _later(horizon),
            ),
        )
    entries = st.builds(Scheduled, triggers, faults if faults is not None else any_faults())
    return st.lists(entries, min_size=min_size, max_size=max_size).map(Schedule)


def policies(
    *,
    staleness: st.SearchStrategy[float] | None = None,
    leeway: st.SearchStrategy[float] | None = None,
    key_staleness: st.SearchStrategy[float] | None = None,
    max_lifetime: st.SearchStrategy[float | None] | None = None,
) -> st.SearchStrategy[Policy]:
    """Service policies: allowed staleness (0 to 300 s), clock leeway (0 to 60 s), JWKS
    staleness (0 to 300 s) and an optional maximum token lifetime (60 s to a day).

    Shrinks towards the strictest policy: no staleness, no leeway, no lifetime limit.
    """
    for name, strategy in (
        ("staleness", staleness),
        ("leeway", leeway),
        ("key_staleness", key_staleness),
        ("max_lifetime", max_lifetime),
    ):
        if strategy is not None and not isinstance(strategy, st.SearchStrategy):
            raise InvalidArgument(f"{name}={strategy!r} must be a strategy")
    seconds = st.integers(0, 300).map(float)
    return st.builds(
        Policy,
        staleness=staleness if staleness is not None else seconds,
        leeway=leeway if leeway is not None else st.integers(0, 60).map(float),
        key_staleness=key_staleness if key_staleness is not None else seconds,
        max_lifetime=(
            max_lifetime
            if max_lifetime is not None
            else st.none() | st.integers(60, 86400).map(float)
        ),
    )


def _register_policies() -> None:
    # st.from_type(Policy) draws policies(); faults register their own (jitchaos.faults).
    st.register_type_strategy(Policy, lambda _: policies())


_register_policies()
