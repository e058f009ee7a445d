"""Argument checks shared by several modules: attrs validators for the value types (faults,
policies) and the same rule for plain function arguments."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs

from jitchaos.errors import InvalidArgument

__all__ = ["check_seconds", "finite_number", "typed"]


def finite_number(name: str, value: object, *, minimum: float | None = None) -> float:
    """``value`` as a float when it is a finite number (not a bool) of at least ``minimum``;
    else :class:`InvalidArgument` naming ``name``. NaN compares false with everything, so an
    unchecked NaN time passes every expiry check."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (minimum is not None and value < minimum)
    ):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise InvalidArgument(f"{name}={value!r} must be a finite number{bound}")
    return float(value)


def check_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A finite, non-negative number of seconds (not a bool)."""
    try:
        finite_number(attribute.name, value, minimum=0)
    except InvalidArgument:
        raise InvalidArgument(
            f"{attribute.name}={value!r} must be a finite number of seconds >= 0"
        ) from None


def typed(
    *kinds: type, error: type[Exception] = InvalidArgument
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: the value is an instance of one of ``kinds`` (a bool is not an int
    here), else ``error`` naming the field and the value. attrs's own ``instance_of`` raises a
    TypeError whose text is a tuple of internals, and takes True for an int."""
    names = " or ".join(kind.__name__ for kind in kinds)

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise error(f"{attribute.name}={value!r} must be a {names}")

    return check
