"""attrs validators shared by the value types of several modules (faults, policies)."""

from __future__ import annotations

import math
from typing import Any

import attrs

from jitchaos.errors import InvalidArgument

__all__ = ["check_seconds"]


def check_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A finite, non-negative number of seconds (not a bool)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidArgument(
            f"{attribute.name}={value!r} must be a finite number of seconds >= 0"
        )
