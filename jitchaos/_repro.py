"""Replaying a failure: the machine class it ran on, rebuilt from its record, and a
:class:`Repro` that replays it step by step on a fresh embedded IdP, proxy and service (what a
repro notebook's cells call). The record itself lives in :mod:`jitchaos._failure`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jitchaos._failure import Failure, Step, resolve
from jitchaos._stateful import AuthChaosMachine, ClientChaosMachine, _ChaosMachine
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._checker import Violation
    from jitchaos._coverage import Coverage
    from jitchaos._history import AppliedFault, Decision

__all__ = ["Repro", "load_failure", "machine_from_failure"]


def load_failure(source: str | os.PathLike[str] | Mapping[str, Any] | Failure) -> Failure:
    """A failure record from a file, JSON data or a record, checked; InvalidArgument naming
    the problem."""
    return Failure.load(source)


def machine_from_failure(failure: Failure | Mapping[str, Any]) -> type[_ChaosMachine]:
    """The machine class the failure ran on, rebuilt from its record."""
    failure = Failure.load(failure)
    service = failure.service
    if "url" in service:
        target: Any = service["url"]
    elif "factory" in service:
        target = resolve(service["factory"])
        if service.get("kwargs"):
            target = functools.partial(target, **service["kwargs"])
        target = staticmethod(target)
    else:
        raise InvalidArgument(
            f"the failure's service ({service.get('unimportable', service)!r}) cannot be "
            "imported; replay it from the test that defines it"
        )
    base: type[_ChaosMachine] = (
        ClientChaosMachine if failure.machine == "client" else AuthChaosMachine
    )
    attributes: dict[str, Any] = {
        "client" if base is ClientChaosMachine else "service": target,
        "routes": {route: frozenset(scopes) for route, scopes in failure.routes.items()},
        "policy": failure.policy,
        "scopes": failure.scopes,
        "actions": frozenset(failure.actions if failure.actions is not None else base.all_actions),
        "outage_endpoints": (
            failure.outage_endpoints
            if failure.outage_endpoints is not None
            else base.outage_endpoints
        ),
    }
    name = re.sub(r"\W+", "_", failure.test) or "Replayed"
    return type(name, (base,), attributes)


class Repro:
    """A failure replayed step by step on a fresh embedded IdP, proxy and service."""

    def __init__(self, failure: str | os.PathLike[str] | Mapping[str, Any] | Failure) -> None:
        self.failure = Failure.load(failure)
        self.machine = machine_from_failure(self.failure)()
        self._seen = 0

    def describe(self) -> str:
        service = self.failure.service
        what = service.get("url") or (
            service["factory"]
            + (
                "(" + ", ".join(f"{k}={v!r}" for k, v in service.get("kwargs", {}).items()) + ")"
                if service.get("kwargs")
                else "()"
            )
        )
        proxy = self.machine.proxy
        return (
            f"IdP (embedded) behind the chaos proxy at {proxy.url}\n"
            f"service {what} behind the proxy at {proxy.service_url('service')}\n"
            f"policy {self.machine.policy!r}"
        )

    def step(self, step: Step | Mapping[str, Any]) -> list[Decision | AppliedFault]:
        """Run one recorded step; print and return what the proxy saw during it."""
        self.machine.replay_step(step)
        entries = list(self.machine.proxy.history.entries[self._seen :])
        self._seen += len(entries)
        for entry in entries:
            print(_line(entry))
        return entries

    def check(self) -> tuple[Violation, ...]:
        """The checker's verdict on everything replayed so far; prints each violation."""
        found = self.machine.violations()
        for violation in found:
            print(violation.format())
        if not found:
            print("no violation")
        return found

    def plot(self) -> Any:
        """The timeline of grants, faults and decisions, the violating decisions marked."""
        from jitchaos._notebook import plot_timeline

        history = self.machine.proxy.history
        return plot_timeline(
            self.machine.proxy.ledger,
            history.decisions,
            findings=self.machine.violations(),
            faults=history.faults,
        )

    def coverage(self) -> Coverage:
        """What the replay exercised: its uses per route, token state and fault, judged or
        inside the policy's windows; prints the table."""
        covered = self.machine.example_report().coverage
        print(covered.format())
        return covered

    def close(self) -> None:
        self.machine.teardown()


def _line(entry: Decision | AppliedFault) -> str:
    from jitchaos._history import Decision

    if isinstance(entry, Decision):
        token = f" with token {entry.fingerprint}" if entry.fingerprint else ""
        return f"  {entry.service}: {entry.method} {entry.path}{token} -> {entry.status}"
    return f"  fault {entry.fault!r}: {entry.detail}"
