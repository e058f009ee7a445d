"""Shrunk failures as data and as runnable notebooks.

When a machine's invariant fails, it remembers the failure as plain JSON: the machine's
configuration (the service as an importable factory or a URL, routes, policy, rules), every
step of the example with the values it drew (tokens by their position, forged tokens by their
attack class: never a raw token), and the violations. Hypothesis runs the shrunk example last,
so the failure remembered at the end is the shrunk one; replaying it needs nothing from
Hypothesis's example database. A notebook replays it cell by cell on the embedded IdP and proxy,
runs the checker and draws the timeline.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from jitchaos._policy import Policy
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._checker import Violation
    from jitchaos._history import AppliedFault, Decision
    from jitchaos._stateful import _ChaosMachine

__all__ = [
    "FORMAT",
    "Repro",
    "failure_record",
    "load_failure",
    "machine_from_failure",
    "repro_notebook",
    "write_repro",
]

FORMAT = "jitchaos-failure/1"


def failure_record(machine: _ChaosMachine, found: Sequence[Violation]) -> dict[str, Any]:
    """What a failing example was, as JSON-ready data."""
    from jitchaos._stateful import ClientChaosMachine

    cls = type(machine)
    client = isinstance(machine, ClientChaosMachine)
    target = getattr(cls, "client" if client else "service", None)
    return {
        "format": FORMAT,
        "test": cls.__qualname__,
        "machine": "client" if client else "service",
        "service": _describe(target),
        "routes": {route: sorted(scopes) for route, scopes in cls.routes.items()},
        "policy": attrs.asdict(cls.policy),
        "scopes": sorted(cls.scopes),
        "actions": sorted(machine._actions),
        "outage_endpoints": list(cls.outage_endpoints),
        "steps": copy.deepcopy(machine.steps),
        "violations": [{"kind": v.kind, "sentence": v.sentence} for v in found],
    }


def _describe(target: object) -> dict[str, Any]:
    """The service as something another process can import, or its URL."""
    if isinstance(target, str):
        return {"url": target}
    kwargs: dict[str, Any] = {}
    func = target
    if isinstance(target, functools.partial) and not target.args:
        func, kwargs = target.func, dict(target.keywords)
    name = f"{getattr(func, '__module__', '?')}:{getattr(func, '__qualname__', '?')}"
    try:
        json.dumps(kwargs)
        if _resolve(name) is not func:
            raise ValueError(name)
    except (TypeError, ValueError, InvalidArgument):
        return {"unimportable": repr(target)}
    return {"factory": name, "kwargs": kwargs}


def _resolve(name: str) -> Any:
    module, _, qualname = name.partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise InvalidArgument(f"service factory {name!r} cannot be imported: {error}") from None
    return value


def load_failure(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A failure record from a file or a mapping, checked; InvalidArgument naming the problem."""
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "the failure"
    else:
        where = f"failure file {os.fspath(source)!r}"
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidArgument(f"{where}: {error}") from None
        except ValueError as error:
            raise InvalidArgument(f"{where} is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidArgument(f"{where} is not a jitchaos failure (format {FORMAT!r})")
    shapes: dict[str, type] = {
        "test": str,
        "machine": str,
        "service": dict,
        "routes": dict,
        "policy": dict,
        "steps": list,
        "violations": list,
    }
    for key, kind in shapes.items():
        if not isinstance(data.get(key), kind):
            raise InvalidArgument(f"{where}: {key!r} must be a {kind.__name__}")
    if data["machine"] not in ("service", "client"):
        raise InvalidArgument(f"{where}: 'machine' must be 'service' or 'client'")
    return data


def machine_from_failure(failure: Mapping[str, Any]) -> type[_ChaosMachine]:
    """The machine class the failure ran on, rebuilt from its record."""
    from jitchaos._stateful import AuthChaosMachine, ClientChaosMachine

    service = failure["service"]
    if "url" in service:
        target: Any = service["url"]
    elif "factory" in service:
        target = _resolve(service["factory"])
        if service.get("kwargs"):
            target = functools.partial(target, **service["kwargs"])
        target = staticmethod(target)
    else:
        raise InvalidArgument(
            f"the failure's service ({service.get('unimportable', service)!r}) cannot be "
            "imported; replay it from the test that defines it"
        )
    base: type[_ChaosMachine] = (
        ClientChaosMachine if failure["machine"] == "client" else AuthChaosMachine
    )
    try:
        policy = Policy(**failure["policy"])
    except (TypeError, InvalidArgument) as error:
        raise InvalidArgument(f"the failure's policy: {error}") from None
    attributes: dict[str, Any] = {
        "client" if base is ClientChaosMachine else "service": target,
        "routes": {route: frozenset(scopes) for route, scopes in failure["routes"].items()},
        "policy": policy,
        "scopes": tuple(failure.get("scopes", ("read", "write"))),
        "actions": frozenset(failure.get("actions", base.all_actions)),
        "outage_endpoints": tuple(failure.get("outage_endpoints", base.outage_endpoints)),
    }
    name = re.sub(r"\W+", "_", str(failure["test"])) or "Replayed"
    return type(name, (base,), attributes)


class Repro:
    """A failure replayed step by step on a fresh embedded IdP, proxy and service."""

    def __init__(self, failure: str | os.PathLike[str] | Mapping[str, Any]) -> None:
        self.failure = load_failure(failure)
        self.machine = machine_from_failure(self.failure)()
        self._seen = 0

    def describe(self) -> str:
        service = self.failure["service"]
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

    def step(self, step: Mapping[str, Any]) -> list[Decision | AppliedFault]:
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

    def close(self) -> None:
        self.machine.teardown()


def _line(entry: Decision | AppliedFault) -> str:
    from jitchaos._history import Decision

    if isinstance(entry, Decision):
        token = f" with token {entry.fingerprint}" if entry.fingerprint else ""
        return f"  {entry.service}: {entry.method} {entry.path}{token} -> {entry.status}"
    return f"  fault {entry.fault!r}: {entry.detail}"


def repro_notebook(failure: Mapping[str, Any]) -> Any:
    """A notebook replaying ``failure``: the violation, the set-up, one cell per step, the
    checker, the timeline."""
    import nbformat

    failure = load_failure(failure)
    first = failure["violations"][0] if failure["violations"] else {"kind": "?", "sentence": ""}
    steps = failure["steps"]
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# {failure['test']}: `{first['kind']}`\n\n{first['sentence']}\n\n"
            f"The cells below replay the {len(steps)} shrunk steps on a fresh embedded IdP, "
            "chaos proxy and service, with the same faults and the same drawn values, then "
            "run the checker and draw the timeline (tokens appear only as fingerprints)."
        ),
        nbformat.v4.new_code_cell(
            "from jitchaos.notebook import Repro\n\n"
            f"FAILURE = {_literal(failure)}\n"
            "repro = Repro(FAILURE)  # starts the embedded IdP, the proxy and the service\n"
            "print(repro.describe())"
        ),
    ]
    for number, step in enumerate(steps, 1):
        cells.append(
            nbformat.v4.new_code_cell(
                f"# step {number}: {_call(step)}\nrepro.step({_literal(step)});"
            )
        )
    cells.append(nbformat.v4.new_code_cell("violations = repro.check()"))
    cells.append(nbformat.v4.new_code_cell("repro.plot();"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def _literal(value: Any) -> str:
    """JSON written as a Python literal (true/false/null spelled the Python way)."""
    return repr(json.loads(json.dumps(value)))


def _call(step: Mapping[str, Any]) -> str:
    args = [f"{k}={v!r}" for k, v in step.get("args", {}).items()]
    draws = step.get("draws", [])
    if draws:
        args.append(f"drawn={draws!r}")
    return f"{step.get('rule')}({', '.join(args)})"


def write_repro(
    failure: Mapping[str, Any],
    directory: str | os.PathLike[str],
    *,
    execute: bool = False,
    timeout: float = 120,
) -> Path:
    """Write ``DIRECTORY/<test>-<hash>.ipynb`` (and the failure as ``.json`` beside it); with
    ``execute``, run it on a Jupyter kernel first so it carries its outputs and the plot."""
    from jitchaos._notebook import write_notebook

    notebook = repro_notebook(failure)
    if execute:
        from jupyter_client.manager import KernelManager
        from nbclient import NotebookClient

        # IPC sockets in a private directory: no TCP port, nothing reachable from elsewhere.
        with tempfile.TemporaryDirectory(prefix="jitchaos-kernel-") as sockets:
            manager = KernelManager(
                kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel")
            )
            try:
                # We own the kernel's client too: close its sockets when done.
                NotebookClient(notebook, timeout=timeout, km=manager).execute(cleanup_kc=True)
            finally:
                if manager.has_kernel:
                    manager.shutdown_kernel(now=True)
    path = write_notebook(notebook, Path(directory), str(failure["test"]))
    path.with_suffix(".json").write_text(json.dumps(failure, indent=2) + "\n", encoding="utf-8")
    return path
