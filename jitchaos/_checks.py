"""Argument checks shared by several modules: attrs validators for the value types (faults,
policies) and the same rule for plain function arguments."""

from __future__ import annotations

import decimal
import json
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from jitchaos.errors import InvalidArgument

__all__ = [
    "address",
    "at_least",
    "check_seconds",
    "finite_number",
    "is_finite",
    "non_empty",
    "read_json_file",
    "route_scopes",
    "scope_names",
    "typed",
]


def finite_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    above: float | None = None,
    must: str | None = None,
) -> float:
    """``value`` as a float when it is a finite number (not a bool), at least ``minimum`` and
    more than ``above`` when given; else :class:`InvalidArgument` naming ``name`` (``must``
    words the rule, e.g. "finite seconds > 0"). NaN compares false with everything, so an
    unchecked NaN time passes every expiry check."""
    if (
        type(value) is float  # the common case, without ABC checks
        and math.isfinite(value)
        and (minimum is None or value >= minimum)
        and (above is None or value > above)
    ):
        return value
    # numbers.Real: also numpy scalars and Fractions; Decimal is a number too, if not Real.
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real | decimal.Decimal)
        or not is_finite(value)
        or (minimum is not None and value < minimum)
        or (above is not None and value <= above)
    ):
        if must is None:
            bound = "" if minimum is None else f" >= {minimum:g}"
            bound += "" if above is None else f" > {above:g}"
            must = f"a finite number{bound}"
        raise InvalidArgument(f"{name}={value!r} must be {must}")
    return float(value)


def is_finite(value: Any) -> bool:
    """Finite, and within a float's range: an int of 400 digits is a number no time or
    duration here can be (``math.isfinite`` raises OverflowError for it)."""
    try:
        return math.isfinite(value) and math.isfinite(float(value))
    except OverflowError:
        return False


def at_least(bound: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """An attrs validator: the value is at least ``bound``, else :class:`InvalidArgument`
    naming the field (attrs's own ``ge`` raises a ValueError, which callers do not expect)."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value < bound:
            raise InvalidArgument(f"{attribute.name}={value!r} must be >= {bound}")

    return check


def non_empty(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An attrs validator: a non-empty value (after ``typed``), as :class:`InvalidArgument`."""
    if not value:
        raise InvalidArgument(f"{attribute.name}={value!r} must not be empty")


def check_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A finite, non-negative number of seconds (not a bool)."""
    finite_number(attribute.name, value, minimum=0, must="a finite number of seconds >= 0")


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


def scope_names(name: str, value: object) -> frozenset[str]:
    """``value`` (any iterable but a str, read once) as a set of scope names; a str is refused:
    it would be one name a letter."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgument(f"{name}={value!r} must be a collection of scope names, not a str")
    names = frozenset(value)
    if not all(isinstance(scope, str) and scope for scope in names):
        raise InvalidArgument(f"{name}={sorted(map(repr, names))} must hold scope names (str)")
    return names


def route_scopes(name: str, value: object) -> dict[str, frozenset[str]]:
    """``value`` as ``{"METHOD /path": scopes}``: what each route needs."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{name}={value!r} must map 'METHOD /path' to scope names")
    routes = {}
    for route, scopes in value.items():
        if not isinstance(route, str) or not route:
            raise InvalidArgument(f"{name}: route {route!r} must be 'METHOD /path' or '/path'")
        routes[route] = scope_names(f"{name}[{route!r}]", scopes)
    return routes


def read_json_file(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON a user's file holds; InvalidArgument naming the file (``what`` it is) and the
    problem when it cannot be read or is not JSON."""
    where = f"{what} {os.fspath(path)!r}"
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidArgument(f"{where}: {error}") from None
    except ValueError as error:
        raise InvalidArgument(f"{where} is not JSON: {error}") from None


def address(name: str, value: object) -> tuple[str, int]:
    """A listener's address: ``"host:port"`` (``"[::1]:8790"`` for IPv6) or a ``(host, port)``
    pair; port 0 picks a free one. Raises :class:`InvalidArgument` naming ``name``."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isascii() or not port.isdigit():
            raise InvalidArgument(f"{name}={value!r} must be 'host:port'")
        value = (host, int(port))
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not value[0]
        or any(c in value[0] for c in "/ \t@[]")
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
        or not 0 <= value[1] <= 65535
    ):
        raise InvalidArgument(
            f"{name}={value!r} must be 'host:port' or a (host, port) pair, port 0 to 65535"
        )
    return value[0], value[1]
