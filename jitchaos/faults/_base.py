"""What every fault shares: its target and endpoint vocabularies, and its validators.

A fault is plain data: a frozen attrs value whose repr is a valid constructor call (so a repro
notebook can replay it), validated on construction (so ``st.builds`` infers valid values), with a
``kind`` (its registry name) and a one-line ``summary`` (what ``jitchaos faults`` prints).
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Literal, Protocol, get_args

import attrs

from jitchaos.errors import InvalidArgument

__all__ = ["ENDPOINTS", "Endpoint", "Fault", "check_seconds", "check_target"]

Endpoint = Literal["token", "introspection", "revocation", "jwks", "userinfo", "discovery"]
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)

# "request": the token carried or issued by the request that triggered the fault;
# "token:FP", "grant:ID", "principal:subject:NAME" / "principal:client:ID": a ledger selector.
_TARGET = re.compile(r"request|token:[0-9a-f]{16}|grant:\S+|principal:(subject|client):\S+")


class Fault(Protocol):
    """One change injected into the auth world."""

    kind: ClassVar[str]
    summary: ClassVar[str]


def check_target(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _TARGET.fullmatch(value):
        raise InvalidArgument(
            f"{attribute.name}={value!r} must be 'request', 'token:FINGERPRINT', 'grant:ID' or "
            "'principal:subject:NAME' / 'principal:client:ID'"
        )


def check_seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidArgument(
            f"{attribute.name}={value!r} must be a finite number of seconds >= 0"
        )


def check_endpoint(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ENDPOINTS:
        raise InvalidArgument(f"{attribute.name}={value!r} must be one of {', '.join(ENDPOINTS)}")


def one_of(*choices: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            raise InvalidArgument(
                f"{attribute.name}={value!r} must be one of {', '.join(choices)}"
            )

    return check
