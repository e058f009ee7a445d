"""The fault catalogue: one module per fault kind, and the registry by name.

Adding a fault is adding one file: a frozen attrs class with ``kind``, ``summary``, a
``fire(world)`` method saying how it acts (see ``_base.py``: it changes the :class:`World` at once
and may return an :class:`Effect` that goes on acting on later traffic), ``strategy()`` (its
Hypothesis values) and ``seeded(rng, endpoint)`` (what a seeded schedule draws), and a module
docstring saying what it does to the auth world and which class of bug it exposes; plus its
entry in :data:`FAULTS` and :data:`AnyFault` below (literals, not import side effects; a test
checks that the two agree). Strategies and schedules read the registry.
"""

from collections.abc import Mapping
from typing import Any

from jitchaos.faults._base import (
    ENDPOINTS,
    Answer,
    Effect,
    Endpoint,
    Exchange,
    Fault,
    Issue,
    NotApplicable,
    World,
)
from jitchaos.faults._clock_skew import ClockSkew
from jitchaos.faults._expire import Expire
from jitchaos.faults._hold_refresh import HoldRefresh
from jitchaos.faults._latency import Latency
from jitchaos.faults._narrow import Narrow
from jitchaos.faults._outage import Outage
from jitchaos.faults._revoke import Revoke
from jitchaos.faults._rotate_keys import RotateKeys

AnyFault = Expire | Revoke | Narrow | RotateKeys | Outage | Latency | ClockSkew | HoldRefresh

FAULTS: Mapping[str, type[AnyFault]] = {
    "expire": Expire,
    "revoke": Revoke,
    "narrow": Narrow,
    "rotate_keys": RotateKeys,
    "outage": Outage,
    "latency": Latency,
    "clock_skew": ClockSkew,
    "hold_refresh": HoldRefresh,
}

__all__ = [
    "ENDPOINTS",
    "FAULTS",
    "Answer",
    "AnyFault",
    "ClockSkew",
    "Effect",
    "Endpoint",
    "Exchange",
    "Expire",
    "Fault",
    "HoldRefresh",
    "Issue",
    "Latency",
    "Narrow",
    "NotApplicable",
    "Outage",
    "Revoke",
    "RotateKeys",
    "World",
]


def _register_types() -> None:
    """Teach ``st.from_type`` each fault's own strategy (idempotent)."""
    from hypothesis import strategies as st

    # Registered as functions, resolved when from_type needs them: registering a strategy
    # object makes Hypothesis inspect it at once, which it warns about while plugins load.
    for fault in FAULTS.values():
        st.register_type_strategy(fault, _strategy_of)


def _strategy_of(fault: type[AnyFault]) -> Any:
    return fault.strategy()


_register_types()
