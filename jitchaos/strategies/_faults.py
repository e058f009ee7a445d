"""Strategies for faults, and their registration so ``st.from_type(Expire)`` gives valid faults."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from jitchaos.errors import InvalidArgument
from jitchaos.faults import (
    FAULTS,
    AnyFault,
)

__all__ = ["faults"]


def faults(*, kinds: Sequence[str] | None = None) -> st.SearchStrategy[AnyFault]:
    """Any registered fault, or only those of ``kinds`` (registry names).

    Shrinks towards the first kind given (registry order by default) and, within a kind, towards
    the smallest parameters: target ``request``, zero delays and durations.
    """
    if kinds is None:
        kinds = list(FAULTS)
    if isinstance(kinds, str) or not kinds or any(kind not in FAULTS for kind in kinds):
        raise InvalidArgument(f"kinds={kinds!r} must be a non-empty list of: {', '.join(FAULTS)}")
    return st.one_of([FAULTS[kind].strategy() for kind in kinds])


def register_types() -> None:
    """Teach ``st.from_type`` to build valid faults and policies (idempotent)."""
    from jitchaos._policy import Policy
    from jitchaos.strategies._schedules import policies

    # The faults registered their own strategies when jitchaos.faults was imported (above).
    st.register_type_strategy(Policy, lambda _: policies())
