"""The record of a failure a machine found, shared by the machine that finds and minimizes it,
``jitchaos run``, ``jitchaos repro``, the demo and the repro notebooks.

A :class:`Failure` is frozen data: the machine's configuration (the service as an importable
factory or a URL, routes, policy, rules), every step of the example with the values it drew
(tokens by their position, forged tokens by their attack class: never a raw token) and the
violations. On disk it is JSON with a format version (:data:`FORMAT`); :meth:`Failure.from_json`
reads it back and names whatever is wrong. This module imports no machine: the chain runs one
way, from the machines (``_stateful``) to this record, and from the replay (``_repro``) to both.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from jitchaos._checks import read_json_file
from jitchaos._policy import Policy
from jitchaos.errors import InvalidArgument

__all__ = [
    "FORMAT",
    "Failure",
    "Found",
    "Step",
    "describe_service",
    "resolve",
    "told",
    "write_ready_repro",
    "write_repro",
]

FORMAT = "jitchaos-failure/1"
"""The on-disk format and its version; a record of another format is refused."""


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (a copy: the machine's own step list goes on changing)."""
    return json.loads(json.dumps(value))


def _draws(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(_jsonable(list(value)))


@attrs.frozen(kw_only=True)
class Step:
    """One rule a machine ran, with its arguments and the values it drew."""

    rule: str
    args: Mapping[str, Any] = attrs.field(factory=dict, converter=_jsonable)
    """Arguments as JSON data; a held token is ``{"token": position}``."""
    draws: tuple[Any, ...] = attrs.field(default=(), converter=_draws)
    """The values the rule drew, in order, as JSON data."""

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "args": dict(self.args), "draws": list(self.draws)}

    @classmethod
    def from_json(cls, raw: object, *, where: str = "a step") -> Step:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("rule"), str):
            raise InvalidArgument(f"{where} must be an object with a 'rule' string")
        args, draws = raw.get("args", {}), raw.get("draws", [])
        if not isinstance(args, Mapping) or not isinstance(draws, list):
            raise InvalidArgument(f"{where}: 'args' must be an object and 'draws' a list")
        return cls(rule=raw["rule"], args=args, draws=draws)


@attrs.frozen(kw_only=True)
class Found:
    """A violation the failure showed: its kind and its sentence (and for a hostile token
    accepted, its attack class)."""

    kind: str
    sentence: str
    attack: str | None = None

    @property
    def distinct(self) -> str:
        """Its kind, and its attack class where it has one (see ``Violation.distinct``)."""
        return self.kind if self.attack is None else f"{self.kind}: {self.attack}"


def _policy(value: Policy | Mapping[str, Any]) -> Policy:
    return value if isinstance(value, Policy) else Policy(**value)


def _routes(routes: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    return {route: tuple(sorted(scopes)) for route, scopes in dict(routes).items()}


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _sorted_or_all(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(sorted(value))


def _in_order_or_default(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _steps(value: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(value)


def _found(value: Iterable[Found]) -> tuple[Found, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Failure:
    """What a failing example was, and what it showed."""

    test: str
    """The machine class's qualified name."""
    machine: str
    """``service`` (an :class:`~jitchaos.AuthChaosMachine`) or ``client``."""
    service: Mapping[str, Any] = attrs.field(converter=_jsonable)
    """``{"factory": "module:name", "kwargs": {...}}``, ``{"url": ...}`` or
    ``{"unimportable": repr}`` (see :func:`describe_service`)."""
    routes: Mapping[str, tuple[str, ...]] = attrs.field(converter=_routes)
    policy: Policy = attrs.field(converter=_policy)
    scopes: tuple[str, ...] = attrs.field(default=("read", "write"), converter=_strings)
    actions: tuple[str, ...] | None = attrs.field(default=None, converter=_sorted_or_all)
    """The rules the machine ran; None for all of them."""
    outage_endpoints: tuple[str, ...] | None = attrs.field(
        default=None, converter=_in_order_or_default
    )
    steps: tuple[Step, ...] = attrs.field(converter=_steps)
    violations: tuple[Found, ...] = attrs.field(converter=_found)

    @property
    def kinds(self) -> frozenset[str]:
        """The violation kinds it showed."""
        return frozenset(found.kind for found in self.violations)

    @property
    def distinct(self) -> frozenset[str]:
        """What tells its violations apart: kinds, and attack classes of hostile tokens."""
        return frozenset(found.distinct for found in self.violations)

    def with_steps(self, steps: Iterable[Step], violations: Iterable[Found]) -> Failure:
        """The same failure with fewer steps, and what those showed."""
        return attrs.evolve(self, steps=_steps(steps), violations=_found(violations))

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data, with its :data:`FORMAT`."""
        data: dict[str, Any] = {
            "format": FORMAT,
            "test": self.test,
            "machine": self.machine,
            "service": dict(self.service),
            "routes": {route: list(scopes) for route, scopes in self.routes.items()},
            "policy": attrs.asdict(self.policy),
            "scopes": list(self.scopes),
            "steps": [step.to_json() for step in self.steps],
            "violations": [
                {"kind": v.kind, "sentence": v.sentence}
                | ({"attack": v.attack} if v.attack is not None else {})
                for v in self.violations
            ],
        }
        if self.actions is not None:
            data["actions"] = list(self.actions)
        if self.outage_endpoints is not None:
            data["outage_endpoints"] = list(self.outage_endpoints)
        return data

    @classmethod
    def from_json(cls, data: object, *, where: str = "the failure") -> Failure:
        """The record :meth:`to_json` wrote; :class:`~jitchaos.InvalidArgument` naming what is
        wrong (another format, a missing or mistyped member)."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
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
        found = []
        for n, violation in enumerate(data["violations"], 1):
            if not isinstance(violation, Mapping) or not all(
                isinstance(violation.get(key), str) for key in ("kind", "sentence")
            ):
                raise InvalidArgument(f"{where}: violation {n} needs a 'kind' and a 'sentence'")
            attack = violation.get("attack")
            if attack is not None and not isinstance(attack, str):
                raise InvalidArgument(f"{where}: violation {n}'s 'attack' must be a string")
            found.append(
                Found(kind=violation["kind"], sentence=violation["sentence"], attack=attack)
            )
        try:
            return cls(
                test=data["test"],
                machine=data["machine"],
                service=data["service"],
                routes=data["routes"],
                policy=data["policy"],
                scopes=data.get("scopes", ("read", "write")),
                actions=data.get("actions"),
                outage_endpoints=data.get("outage_endpoints"),
                steps=[
                    Step.from_json(step, where=f"{where}: step {n}")
                    for n, step in enumerate(data["steps"], 1)
                ],
                violations=found,
            )
        except (TypeError, ValueError, InvalidArgument) as error:
            if isinstance(error, InvalidArgument) and str(error).startswith(where):
                raise
            raise InvalidArgument(f"{where}: {error}") from None

    @classmethod
    def load(cls, source: str | os.PathLike[str] | Mapping[str, Any] | Failure) -> Failure:
        """A failure from a record, a file or JSON data; InvalidArgument naming the problem."""
        if isinstance(source, Failure):
            return source
        if isinstance(source, Mapping):
            return cls.from_json(source)
        data = read_json_file(source, "failure file")
        return cls.from_json(data, where=f"failure file {os.fspath(source)!r}")


def describe_service(target: object) -> dict[str, Any]:
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
        if resolve(name) is not func:
            raise ValueError(name)
    except (TypeError, ValueError, InvalidArgument):
        return {"unimportable": repr(target)}
    return {"factory": name, "kwargs": kwargs}


def resolve(name: str) -> Any:
    """The object ``module:qualname`` names; InvalidArgument when it cannot be imported."""
    module, _, qualname = name.partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise InvalidArgument(f"service factory {name!r} cannot be imported: {error}") from None
    return value


def repro_notebook(failure: Failure | Mapping[str, Any]) -> Any:
    """A notebook replaying ``failure``: the violation, the set-up, one cell per step, the
    checker, the timeline."""
    import nbformat

    failure = Failure.load(failure)
    first = failure.violations[0] if failure.violations else Found(kind="?", sentence="")
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# {failure.test}: `{first.kind}`\n\n{first.sentence}\n\n"
            f"The cells below replay the {len(failure.steps)} shrunk steps on a fresh embedded "
            "IdP, chaos proxy and service, with the same faults and the same drawn values, then "
            "run the checker and draw the timeline (tokens appear only as fingerprints)."
        ),
        nbformat.v4.new_code_cell(
            "from jitchaos.notebook import Repro\n\n"
            f"FAILURE = {_literal(failure.to_json())}\n"
            "repro = Repro(FAILURE)  # starts the embedded IdP, the proxy and the service\n"
            "print(repro.describe())"
        ),
    ]
    for number, step in enumerate(failure.steps, 1):
        cells.append(
            nbformat.v4.new_code_cell(
                f"# step {number}: {_call(step)}\nrepro.step({_literal(step.to_json())});"
            )
        )
    cells.append(nbformat.v4.new_code_cell("violations = repro.check()"))
    cells.append(nbformat.v4.new_code_cell("repro.plot();"))
    cells.append(
        nbformat.v4.new_markdown_cell(
            "What this replay exercised: its uses per token state and the fault that last "
            "acted on each, judged (a number) or inside the policy's windows (+N); an empty "
            "cell is a combination the failure never reached."
        )
    )
    cells.append(nbformat.v4.new_code_cell("repro.coverage().plot();"))
    from jitchaos._notebook import python_notebook

    return python_notebook(cells)


def _literal(value: Any) -> str:
    """JSON written as a Python literal (true/false/null spelled the Python way)."""
    return repr(json.loads(json.dumps(value)))


def _call(step: Step) -> str:
    args = [f"{k}={v!r}" for k, v in step.args.items()]
    if step.draws:
        args.append(f"drawn={list(step.draws)!r}")
    return f"{step.rule}({', '.join(args)})"


def _cell_failed(error: Any) -> str:
    """One sentence for a repro notebook that stopped in a cell: what to import, or where to
    run it, for the usual case of a service factory this Python cannot import."""
    name, value = getattr(error, "ename", "Error"), str(getattr(error, "evalue", error))
    first = value.strip().splitlines()[0] if value.strip() else name
    if name in ("ModuleNotFoundError", "ImportError") or "cannot be imported" in first:
        return (
            f"the notebook could not import its service ({first}): run jitchaos repro from the "
            "directory your tests import it from, or install the package that holds it"
        )
    return f"the notebook stopped in a cell with {name}: {first}"


def write_repro(
    failure: Failure | Mapping[str, Any],
    directory: str | os.PathLike[str],
    *,
    execute: bool = False,
    timeout: float = 120,
) -> Path:
    """Write ``DIRECTORY/<test>-<hash>.ipynb`` (and the failure as ``.json`` beside it); with
    ``execute``, run it on a Jupyter kernel first so it carries its outputs and the plot."""
    failure = Failure.load(failure)
    notebook = repro_notebook(failure)
    if execute:
        why = _run(notebook, timeout)
        if why is not None:
            raise InvalidArgument(why)
    return _write(failure, notebook, directory)


def write_ready_repro(
    failure: Failure | Mapping[str, Any],
    directory: str | os.PathLike[str],
    *,
    timeout: float = 120,
) -> tuple[Path, str | None]:
    """:func:`write_repro`, run first on a Jupyter kernel when one is available, so the
    notebook opens with its outputs and plot: ``(path, None)``; else the notebook as written
    and why it was not run: ``(path, reason)``."""
    failure = Failure.load(failure)
    notebook = repro_notebook(failure)
    why = _run(notebook, timeout)
    if why is not None:
        notebook = repro_notebook(failure)  # without the outputs of a run that stopped
        why = why.removeprefix("executing a notebook needs a Jupyter kernel: ")
    return _write(failure, notebook, directory), why


def _run(notebook: Any, timeout: float) -> str | None:
    """Run ``notebook`` in place on a kernel; None when it ran, else why not (a cell that
    stopped it is told in words that say what to import)."""
    from jitchaos._notebook import CellFailed, execute_notebook

    try:
        execute_notebook(notebook, timeout=timeout)
    except CellFailed as failed:
        return _cell_failed(failed.error)
    except InvalidArgument as why:
        return str(why)
    return None


def _write(failure: Failure, notebook: Any, directory: str | os.PathLike[str]) -> Path:
    from jitchaos._notebook import write_notebook

    path = write_notebook(notebook, Path(directory), failure.test)
    path.with_suffix(".json").write_text(
        json.dumps(failure.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    return path


def told(path: Path, why_not_run: str | None) -> str:
    """How a failure's notebook is named to the user: run, or why not and how to run it."""
    if why_not_run is None:
        return f"{path} (run: outputs and timeline inside)"
    return (
        f"{path} (not run: {why_not_run}; `jitchaos repro {path.with_suffix('.json')} "
        f"--out {path.parent} --execute` runs it)"
    )
