"""Schedules: ordered (trigger, fault) pairs, the only source of faults while a test drives.

A schedule is data. Hypothesis generates and shrinks it; the proxy executes it; a repro notebook
replays it. Standalone, :meth:`Schedule.from_seed` expands a seed deterministically: the same
seed, rate and fault kinds give the same schedule, so the same traffic meets the same faults.
The expansion owns its own seeded generator; nothing else ever draws a random number.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import attrs

from jitchaos._checks import typed
from jitchaos.errors import InvalidArgument
from jitchaos.faults import (
    ENDPOINTS,
    FAULTS,
    AnyFault,
    Endpoint,
)

__all__ = [
    "AtStep",
    "AtTime",
    "OnEvent",
    "OnRequest",
    "Schedule",
    "Scheduled",
    "Trigger",
    "fault_from_json",
    "fault_to_json",
]


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{attribute.name}={value!r} must be a whole number >= 1")


@attrs.frozen
class AtStep:
    """Fires when the driving test reaches step ``step`` (1-based)."""

    step: int = attrs.field(validator=_positive_int)


@attrs.frozen
class OnRequest:
    """Fires on the ``n``-th request (1-based) to an IdP ``endpoint``."""

    endpoint: Endpoint = attrs.field()
    n: int = attrs.field(validator=_positive_int)

    @endpoint.validator
    def _check(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ENDPOINTS:
            raise InvalidArgument(f"endpoint={value!r} must be one of {', '.join(ENDPOINTS)}")


@attrs.frozen
class AtTime:
    """Fires once the clock reaches ``at``."""

    at: float = attrs.field()

    @at.validator
    def _check(self, attribute: attrs.Attribute[float], value: float) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidArgument(f"at={value!r} must be a finite time in seconds")


@attrs.frozen
class OnEvent:
    """Fires on the first occurrence of ``event``, e.g. the first successful use of a token."""

    event: Literal["first-use", "first-refresh", "first-grant"] = attrs.field()

    @event.validator
    def _check(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("first-use", "first-refresh", "first-grant"):
            raise InvalidArgument(
                f"event={value!r} must be first-use, first-refresh or first-grant"
            )


Trigger = AtStep | OnRequest | AtTime | OnEvent
_TRIGGERS: dict[str, type[Trigger]] = {
    "at_step": AtStep,
    "on_request": OnRequest,
    "at_time": AtTime,
    "on_event": OnEvent,
}


@attrs.frozen
class Scheduled:
    """One entry: when, and what."""

    trigger: Trigger = attrs.field(validator=typed(AtStep, OnRequest, AtTime, OnEvent))
    fault: AnyFault = attrs.field(validator=typed(*FAULTS.values()))


def _as_tuple(entries: Iterable[Scheduled]) -> tuple[Scheduled, ...]:
    if isinstance(entries, str | bytes | dict) or not isinstance(entries, Iterable):
        raise InvalidArgument(f"entries={entries!r} must be a sequence of Scheduled values")
    return tuple(entries)


@attrs.frozen
class Schedule:
    """An ordered list of (trigger, fault)."""

    entries: tuple[Scheduled, ...] = attrs.field(default=(), converter=_as_tuple)

    @entries.validator
    def _check(
        self, attribute: attrs.Attribute[tuple[Scheduled, ...]], value: tuple[Any, ...]
    ) -> None:
        for entry in value:
            if not isinstance(entry, Scheduled):
                raise InvalidArgument(f"entries must be Scheduled values, not {entry!r}")

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_seed(
        cls,
        seed: int,
        *,
        rate: float,
        faults: Sequence[str],
        requests: int = 1000,
        endpoints: Sequence[Endpoint] = ("token", "introspection", "jwks"),
    ) -> Schedule:
        """Expand ``seed`` into a schedule over the first ``requests`` requests per endpoint:
        each request triggers a fault with probability ``rate``, its kind drawn from ``faults``.
        """
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgument(f"seed={seed!r} must be an integer")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise InvalidArgument(f"rate={rate!r} must be a number from 0 to 1")
        if isinstance(faults, str) or not isinstance(faults, Iterable):
            raise InvalidArgument(
                f"faults={faults!r} must be a list of fault kinds ({', '.join(FAULTS)})"
            )
        faults = tuple(faults)
        unknown = [name for name in faults if name not in FAULTS]
        if unknown or not faults:
            raise InvalidArgument(
                f"faults={list(faults)!r} must name at least one of {', '.join(FAULTS)}"
            )
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
            raise InvalidArgument(f"requests={requests!r} must be a whole number >= 1")
        if isinstance(endpoints, str) or not isinstance(endpoints, Iterable):
            raise InvalidArgument(f"endpoints={endpoints!r} must be a list of {ENDPOINTS}")
        endpoints = tuple(endpoints)
        for endpoint in endpoints:
            if endpoint not in ENDPOINTS:
                raise InvalidArgument(f"endpoints: {endpoint!r} is not one of {ENDPOINTS}")
        rng = random.Random(seed)  # noqa: S311 - reproducible chaos, not cryptography
        entries = []
        for n in range(1, requests + 1):
            for endpoint in endpoints:
                if rng.random() < rate:
                    kind = rng.choice(list(faults))
                    fault = FAULTS[kind].seeded(rng, endpoint)
                    entries.append(Scheduled(OnRequest(endpoint, n), fault))
        return cls(tuple(entries))

    def to_json(self) -> list[dict[str, Any]]:
        """The schedule as JSON-ready data (what ``--schedule FILE`` holds)."""
        names = {cls: name for name, cls in _TRIGGERS.items()}
        return [
            {
                "trigger": {"type": names[type(e.trigger)], **attrs.asdict(e.trigger)},
                "fault": fault_to_json(e.fault),
            }
            for e in self.entries
        ]

    @classmethod
    def from_json(cls, data: object) -> Schedule:
        """The schedule ``data`` describes; :class:`InvalidArgument` names what is wrong."""
        if not isinstance(data, list):
            raise InvalidArgument("a schedule is a JSON list of {trigger, fault} objects")
        entries = []
        for index, item in enumerate(data):
            where = f"schedule entry {index}"
            if not isinstance(item, dict) or set(item) != {"trigger", "fault"}:
                raise InvalidArgument(f"{where} must be an object with trigger and fault")
            entries.append(
                Scheduled(
                    _build(where, "trigger", "type", _TRIGGERS, item["trigger"]),
                    _build(where, "fault", "kind", FAULTS, item["fault"]),
                )
            )
        return cls(tuple(entries))

    @classmethod
    def loads(cls, text: str | bytes) -> Schedule:
        """Parse a schedule file's text."""
        if not isinstance(text, str | bytes):
            raise InvalidArgument(f"a schedule's text is a str, not {type(text).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:  # also a number of 5000 digits
            raise InvalidArgument(f"the schedule is not JSON: {error}") from None
        except RecursionError:
            raise InvalidArgument("the schedule nests arrays or objects too deeply") from None
        return cls.from_json(data)


def fault_from_json(data: object, *, where: str = "fault") -> AnyFault:
    """The fault ``{"kind": ..., field: value, ...}`` describes; errors name what is wrong."""
    if isinstance(data, dict) and "kind" in data:
        return _build(where, "fault", "kind", FAULTS, data)  # type: ignore[no-any-return]
    raise InvalidArgument(f"{where} must be an object with a 'kind', one of {', '.join(FAULTS)}")


def fault_to_json(fault: AnyFault) -> dict[str, Any]:
    """The fault as JSON-ready data (``fault_from_json`` reads it back)."""
    return {"kind": fault.kind, **_jsonable(attrs.asdict(fault))}


def _build(where: str, part: str, tag: str, registry: Any, raw: object) -> Any:
    if not isinstance(raw, dict) or tag not in raw:
        raise InvalidArgument(f"{where}: {part} must be an object with a {tag!r}")
    fields = dict(raw)
    name = fields.pop(tag)
    kind = registry.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidArgument(
            f"{where}: unknown {part} {tag} {name!r}; one of {', '.join(registry)}"
        )
    try:
        return kind(**fields)
    except TypeError as error:
        raise InvalidArgument(f"{where}: {part} {name}: {error}") from None
    except InvalidArgument as error:
        raise InvalidArgument(f"{where}: {part} {name}: {error}") from None


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in fields.items()}
