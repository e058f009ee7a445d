"""Recording and replaying a machine's steps: the tokens a machine holds (raw values kept out
of every repr), the draws each rule makes, recorded as JSON, and the replay that hands the same
values back (what minimizing, ``jitchaos repro`` and the notebooks run)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import strategies as st

from jitchaos._tokens import fingerprint

if TYPE_CHECKING:
    from jitchaos._stateful import _ChaosMachine


@attrs.frozen
class _Token:
    raw: str = attrs.field(repr=False)
    fingerprint: str
    scopes: frozenset[str]
    principal: str
    refresh: str | None = attrs.field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"token({self.principal}: {' '.join(sorted(self.scopes))}, {self.fingerprint})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # Hypothesis would list every field, the raw token included


class _Draws:
    """``st.data()`` as a rule sees it, writing down each value drawn (for replay)."""

    def __init__(self, data: Any, log: list[Any]) -> None:
        self._data = data
        self._log = log

    def draw(self, strategy: st.SearchStrategy[Any], label: str | None = None) -> Any:
        value = self._data.draw(strategy, label=label)
        self._log.append(_encode(value))
        return value


class _Replayed:
    """The values one recorded step drew, handed back in order."""

    def __init__(self, draws: list[Any], machine: _ChaosMachine) -> None:
        self._draws = list(draws)
        self._machine = machine

    def recorded(self) -> list[Any]:
        """The recorded values not handed back yet (all of them, before the step runs)."""
        return copy.deepcopy(self._draws)

    def draw(self, strategy: st.SearchStrategy[Any], label: str | None = None) -> Any:
        if not self._draws:
            raise ValueError(f"the recorded step has no value left to draw for {label!r}")
        return _decode(self._draws.pop(0), self._machine)


def _encode(value: Any) -> Any:
    """A drawn value as JSON: sets as sorted lists, forged tokens by attack class only (never
    the token itself)."""
    from jitchaos.strategies import HostileToken

    if isinstance(value, frozenset | set):
        return {"set": sorted(value)}
    if isinstance(value, HostileToken):
        return {
            "hostile": value.attack,
            "variant": value.variant,
            "fingerprint": fingerprint(value.token),
        }
    return value


def _decode(value: Any, machine: _ChaosMachine) -> Any:
    if isinstance(value, dict) and "set" in value:
        return frozenset(value["set"])
    if isinstance(value, dict) and "hostile" in value:
        return machine._forge_again(value["hostile"], value.get("variant"))
    return value
