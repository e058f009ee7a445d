"""A service's policy: how stale its knowledge may be and how far clocks may disagree.

The ground truth (:meth:`~jitchaos.Ledger.verdict`) is exact; a real service caches
introspection answers and keys, and tolerates clock skew. Its policy says by how much, so a
decision inside those windows is indeterminate, not wrong (Jepsen-style).
"""

from __future__ import annotations

from typing import Any

import attrs

from jitchaos._checks import check_seconds
from jitchaos.errors import InvalidArgument

__all__ = ["Policy"]


def _optional_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_seconds(instance, attribute, value)
        if value == 0:
            raise InvalidArgument(f"{attribute.name}=0 would refuse every token; use None or > 0")


def _positive_count(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{attribute.name}={value!r} must be an integer >= 1")


def _boolean(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{attribute.name}={value!r} must be True or False")


@attrs.frozen(kw_only=True)
class Policy:
    """What a service under test is allowed: the checker's allowance for each decision."""

    staleness: float = attrs.field(default=0.0, validator=check_seconds)
    """Seconds after a revocation, narrowing or early expiry during which the service may still
    act on what it knew before (an introspection or permission cache)."""
    leeway: float = attrs.field(default=0.0, validator=check_seconds)
    """Clock disagreement tolerated around ``exp``, ``nbf`` and ``iat``."""
    key_staleness: float = attrs.field(default=0.0, validator=check_seconds)
    """Seconds after a key rotation or removal during which the service may still use the key
    set it had (a JWKS cache)."""
    max_lifetime: float | None = attrs.field(default=None, validator=_optional_seconds)
    """The longest token lifetime (``exp - iat``) the service accepts; None for no limit."""
    recovery: float = attrs.field(default=1.0, validator=check_seconds)
    """Seconds a client under test may keep presenting a token after a service refused it as
    dead (revoked or expired) before it must have switched to a fresh one."""
    max_refreshes: int = attrs.field(default=1, validator=_positive_count)
    """Refreshes a client under test may make for one access token (a storm is more)."""
    strict_profile: bool = attrs.field(default=False, validator=_boolean)
    """Whether the service is held to the strict RFC 9068 profile: accepting an IdP-signed
    token that deviates from it (``typ`` other than ``at+jwt``, ``exp`` missing or at the
    boundary, ``iat`` in the future, an odd scope or header) is then a violation
    (``profile-deviation-accepted``). Off, such tokens are submitted and not judged: only the
    IdP could sign them, so accepting one is no vulnerability."""
