"""Strategies for faults, and their registration so ``st.from_type(Expire)`` gives valid faults."""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence

from hypothesis import strategies as st

from jitchaos.errors import InvalidArgument
from jitchaos.faults import (
    ENDPOINTS,
    FAULTS,
    AnyFault,
    ClockSkew,
    Expire,
    HoldRefresh,
    Latency,
    Narrow,
    Outage,
    Revoke,
    RotateKeys,
)

__all__ = ["faults"]

_seconds = st.integers(0, 300).map(float)
_targets = st.one_of(
    st.just("request"),
    st.integers(1, 9).map("grant:g{}".format),
    st.sampled_from(["principal:subject:alice", "principal:client:svc"]),
    st.text("0123456789abcdef", min_size=16, max_size=16).map("token:{}".format),
)
_scope_names = st.sampled_from(["read", "write", "admin"]) | st.text(
    string.ascii_lowercase, min_size=1, max_size=8
)
_endpoints = st.sampled_from(ENDPOINTS)

_BY_KIND: dict[str, st.SearchStrategy[AnyFault]] = {
    "expire": st.builds(Expire, target=_targets, issued_ttl=st.none() | st.integers(1, 3600)),
    "revoke": st.builds(Revoke, target=_targets, delay=_seconds),
    "narrow": st.builds(Narrow, scopes=st.frozensets(_scope_names, max_size=3), target=_targets),
    "rotate_keys": st.builds(
        RotateKeys,
        mode=st.sampled_from(["publish-ahead", "add", "remove-old", "rekey"]),
        ahead=st.integers(0, 3600).map(float),
    ),
    "outage": st.builds(
        Outage,
        endpoint=_endpoints,
        mode=st.sampled_from(["5xx", "timeout", "malformed", "empty-keys"]),
        duration=_seconds,
    ),
    "latency": st.builds(Latency, endpoint=_endpoints, seconds=_seconds, duration=_seconds),
    "clock_skew": st.builds(
        ClockSkew, seconds=st.integers(-300, 300).map(float), exp_at_leeway=st.booleans()
    ),
    "hold_refresh": st.builds(HoldRefresh, count=st.integers(2, 8), timeout=_seconds),
}
assert set(_BY_KIND) == set(FAULTS)


def faults(*, kinds: Sequence[str] | None = None) -> st.SearchStrategy[AnyFault]:
    """Any registered fault, or only those of ``kinds`` (registry names).

    Shrinks towards the first kind given (registry order by default) and, within a kind, towards
    the smallest parameters: target ``request``, zero delays and durations.
    """
    if kinds is None:
        kinds = list(FAULTS)
    if isinstance(kinds, str) or not kinds or any(kind not in FAULTS for kind in kinds):
        raise InvalidArgument(f"kinds={kinds!r} must be a non-empty list of: {', '.join(FAULTS)}")
    return st.one_of([_BY_KIND[kind] for kind in kinds])


def register_types() -> None:
    """Teach ``st.from_type`` to build valid faults and policies (idempotent)."""
    from jitchaos._policy import Policy
    from jitchaos.strategies._schedules import policies

    # Registered as functions, resolved when from_type needs them: registering a strategy
    # object makes Hypothesis inspect it at once, which it warns about while plugins load.
    for kind, fault in FAULTS.items():
        st.register_type_strategy(fault, functools.partial(_by_kind, kind))
    st.register_type_strategy(Policy, lambda _: policies())


def _by_kind(kind: str, _: type) -> st.SearchStrategy[AnyFault]:
    return _BY_KIND[kind]
