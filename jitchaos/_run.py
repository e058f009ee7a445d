"""Running a scenario from the catalogue against a service: what ``jitchaos run`` does.

A scenario module defines ``Scenario``, a machine class (see :mod:`strategies`). Running it
names the service (a URL of a running service, or an aiohttp application factory), its routes
and its policy, runs Hypothesis over it with a fixed search order (the same command finds the
same failure), and returns the shrunk failure or how many examples found nothing, with the run
report.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, Phase, settings

from jitchaos._checks import address, read_json_file
from jitchaos._coverage import CoverageCell
from jitchaos._failure import Failure
from jitchaos._oauth_client import exchange
from jitchaos._policy import Policy
from jitchaos._report import RunReport
from jitchaos._runner import RUNS
from jitchaos._stateful import AuthChaosMachine, ClientChaosMachine, ServiceFactory
from jitchaos._vacuity import VacuousRun, check_names
from jitchaos.errors import InvalidArgument

__all__ = ["RunOutcome", "load_policy", "load_scenario", "parse_route", "run_scenario"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@attrs.frozen
class RunOutcome:
    """What a run found."""

    examples: int
    """Examples generated (as ``max_examples`` counts them: shrinking not included)."""
    faults: int
    """Faults injected over all examples."""
    seconds: float
    failure: str | None
    """Each distinct violation found and the shrunk steps that show it; None when nothing
    was found."""
    report: RunReport
    record: Failure | None = None
    """The shrunk failure's record (the first of :attr:`records`)."""
    notebook: Path | None = None
    """The repro notebook written for it."""
    persistent: bool = False
    """The service kept its state across examples (it runs in another process)."""
    records: tuple[Failure, ...] = ()
    """One shrunk failure for each distinct violation kind found, in the order found."""
    notebooks: tuple[Path, ...] = ()
    """The repro notebook written for each of :attr:`records`."""
    shrinking: int = 0
    """Examples run while shrinking the failures."""
    to_first_failure: int | None = None
    """Which generated example failed first (1-based)."""
    world: str = "embedded"
    """Which world the run drove: ``embedded`` or ``staging`` (a real IdP)."""
    revocations: Mapping[str, int] = attrs.field(factory=dict)
    """In the staging world: who applied the revocations, and how many each."""
    seconds_to_first_failure: float | None = None
    """Wall-clock seconds from the run's start to the first failing example's end."""
    vacuous: bool = False
    """The run found no violation but judged nothing a clean verdict could rest on
    (:attr:`failure` says why)."""

    def to_json(self) -> dict[str, Any]:
        """The outcome as data: counts, each distinct violation, the notebooks, and the run
        report with its coverage (what ``jitchaos run --report FILE`` writes)."""
        return {
            "world": self.world,
            "examples": self.examples,
            "shrinking": self.shrinking,
            "to_first_failure": self.to_first_failure,
            "faults": self.faults,
            "seconds": round(self.seconds, 3),
            "verdict": "no verdict"
            if self.vacuous
            else ("violation" if self.failure is not None else "no violation"),
            "failure": self.failure,
            "violations": [
                {"kind": found.kind, "attack": found.attack, "sentence": found.sentence}
                for record in self.records
                for found in record.violations
            ],
            "notebooks": [str(path) for path in self.notebooks],
            "revocations": dict(self.revocations),
            "report": self.report.as_dict(),
        }

    def format(self) -> str:
        if self.vacuous:
            head = (
                f"no verdict after {self.examples} examples ({self.faults} faults injected): "
                f"{self.failure}"
            )
        elif self.failure is None:
            head = f"no violation in {self.examples} examples ({self.faults} faults injected)"
        else:
            distinct = len(self.records)
            found = f"{distinct} distinct violations" if distinct > 1 else "violation"
            spent = f", {self.shrinking} more spent shrinking" if self.shrinking else ""
            where = (
                f"at example {self.to_first_failure} of {self.examples} generated"
                if self.to_first_failure is not None
                else f"among {self.examples} generated examples"  # not replayed (Flaky)
            )
            head = f"{found} found {where}{spent}:\n{self.failure}"
            for notebook in self.notebooks or ((self.notebook,) if self.notebook else ()):
                head += f"\nrepro notebook: {notebook}"
            if self.persistent:
                head += (
                    "\n(the service runs in another process and kept its state across "
                    "examples: what earlier examples left in its caches may be part of the cause)"
                )
        if self.revocations:
            who = "; ".join(f"{n} by {by}" for by, n in sorted(self.revocations.items()))
            head += f"\nrevocations: {who}"
        return f"{head}\n\n{self.report.format()}"


def load_scenario(path: str | os.PathLike[str]) -> type[AuthChaosMachine | ClientChaosMachine]:
    """The ``Scenario`` class of the module at ``path``; InvalidArgument naming the problem."""
    file = Path(path)
    if file.suffix != ".py" or not file.is_file():
        raise InvalidArgument(f"scenario {os.fspath(path)!r} is not a Python file")
    spec = importlib.util.spec_from_file_location(f"jitchaos_scenario_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"scenario {os.fspath(path)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file: report it, don't crash
        raise InvalidArgument(
            f"scenario {os.fspath(path)!r} failed to import: {type(error).__name__}: {error}"
        ) from None
    scenario = getattr(module, "Scenario", None)
    if not (
        isinstance(scenario, type) and issubclass(scenario, AuthChaosMachine | ClientChaosMachine)
    ):
        raise InvalidArgument(
            f"scenario {os.fspath(path)!r} defines no Scenario class (an AuthChaosMachine or "
            "a ClientChaosMachine)"
        )
    return scenario


def parse_route(text: str) -> tuple[str, frozenset[str]]:
    """``"GET /orders=read,write"`` -> ``("GET /orders", {"read", "write"})``."""
    route, sep, scopes = text.partition("=")
    method, _, path = route.strip().partition(" ")
    if not sep or method.upper() not in _METHODS or not path.startswith("/") or " " in path:
        raise InvalidArgument(
            f"route {text!r} must look like 'METHOD /path=scope,scope' (scopes may be empty)"
        )
    needed = frozenset(s for s in scopes.replace(",", " ").split() if s)
    return f"{method.upper()} {path}", needed


def load_policy(path: str | os.PathLike[str], *, base: Policy | None = None) -> Policy:
    """A :class:`Policy` from a JSON object of its fields (seconds as numbers); the fields it
    does not name keep ``base``'s values (a scenario's own policy), or the defaults."""
    data = read_json_file(path, "policy file")
    fields = {f.name for f in attrs.fields(Policy)}
    if not isinstance(data, dict) or set(data) - fields:
        raise InvalidArgument(
            f"policy file {os.fspath(path)!r} must be a JSON object with fields among "
            f"{sorted(fields)}"
        )
    try:
        return attrs.evolve(base, **data) if base is not None else Policy(**data)
    except (InvalidArgument, TypeError) as error:
        raise InvalidArgument(f"policy file {os.fspath(path)!r}: {error}") from None


def run_scenario(
    scenario: type[AuthChaosMachine | ClientChaosMachine],
    *,
    service: str | ServiceFactory,
    routes: Mapping[str, Collection[str]] | None = None,
    policy: Policy | None = None,
    listen: str | tuple[str, int] | None = None,
    control_listen: str | tuple[str, int] | None = None,
    service_listen: str | tuple[str, int] | None = None,
    examples: int = 100,
    steps: int = 10,
    progress: Callable[[int, int, int, float], None] | None = None,
    notebooks: str | os.PathLike[str] | None = None,
    execute: bool = False,
    upstream: str | None = None,
    clients: Sequence[str] = (),
    max_wait: float | None = None,
    shrink_budget: float | None = None,
    suppress: Collection[str] = (),
    seed: int | None = None,
    wiring: Mapping[str, Any] | None = None,
    allow_origins: Sequence[str] = (),
    require_coverage: Sequence[str] = (),
) -> RunOutcome:
    """Run ``scenario`` against ``service`` (a URL: it must answer, and use the proxy's IdP
    side at ``listen`` as its IdP; ``control_listen`` and ``service_listen`` pin the proxy's
    other listeners, ``"host:port"``) and return what it found; a failure is also written as a
    repro notebook into ``notebooks`` (run first with ``execute``, to carry its outputs).
    ``progress`` hears, after each example: examples run, faults injected, distinct violation
    kinds found so far, seconds elapsed.

    ``upstream`` (an OpenID provider's issuer or discovery URL) runs the scenario in the
    staging world, with tokens for ``clients`` (``"ID:SECRET[:SCOPES]"``; none: one registered
    per example, RFC 7591); the service then takes the provider's issuer as its ``iss``.
    ``seed`` makes the search start from another point (default: the same fixed search order
    every time). ``suppress`` names vacuity checks not to run (:mod:`jitchaos._vacuity`).
    ``max_wait`` caps one wall-clock wait and ``shrink_budget`` the seconds spent shrinking
    on the wall clock (defaults: the scenario's ``max_wait`` and ``shrink_budget``).
    ``require_coverage`` names coverage cells (``STATE[:FAULT[:ROUTE]]``) a clean run must
    have judged a use in, beside the scenario's own (:mod:`jitchaos._coverage`).
    ``wiring`` overrides the scenario's wiring settings of the embedded world, by name
    (``audience``, ``access_ttl``, ``refresh_ttl``, ``grant_client``, ``introspection_client``,
    ``app_client``, ``users``: see :class:`~jitchaos._worlds.Wiring`)."""
    from jitchaos._worlds import TestClient, Wiring

    wiring = dict(wiring or {})
    unknown = set(wiring) - set(attrs.fields_dict(Wiring))
    if unknown:
        raise InvalidArgument(
            f"wiring names no setting {sorted(unknown)} "
            f"(settings: {', '.join(attrs.fields_dict(Wiring))})"
        )
    if wiring and upstream is not None:
        raise InvalidArgument(
            f"{', '.join(sorted(wiring))}: the embedded IdP's wiring; with --upstream the "
            "provider's own clients, users and lifetimes apply"
        )
    if isinstance(wiring.get("users"), list | tuple):
        wiring["users"] = dict(wiring["users"])

    parsed_clients = [TestClient.parse(text) for text in clients]
    if isinstance(require_coverage, str):
        raise InvalidArgument(f"require_coverage={require_coverage!r} must be a list of cells")
    for cell in require_coverage:
        CoverageCell.parse(cell)
    if upstream is not None and not isinstance(upstream, str):
        raise InvalidArgument(f"upstream={upstream!r} must be the URL of an OpenID provider")
    for name, seconds in (("max_wait", max_wait), ("shrink_budget", shrink_budget)):
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < float("inf")
        ):
            raise InvalidArgument(f"{name}={seconds!r} must be seconds >= 0")
    if allow_origins and upstream is None:
        raise InvalidArgument("allowed origins are an upstream IdP's: give --upstream")
    if isinstance(allow_origins, str):
        raise InvalidArgument(f"allow_origins={allow_origins!r} must be a list of origins")
    if clients and upstream is None:
        raise InvalidArgument("test clients are clients of an upstream IdP: give --upstream")
    for name, value in (
        ("listen", listen),
        ("control_listen", control_listen),
        ("service_listen", service_listen),
    ):
        if value is not None:
            address(name, value)
    if isinstance(service, str):
        _check_reachable(service)
    routes = routes if routes is not None else scenario.routes
    if not routes:
        raise InvalidArgument("no routes: name at least one ('METHOD /path=scopes')")
    counts = {"examples": 0, "faults": 0}
    started = time.monotonic()

    class Run(scenario):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            super().__init__()
            counts["examples"] += 1

        def teardown(self) -> None:
            counts["faults"] += sum(1 for f in self.proxy.history.faults if f.applied)
            super().teardown()
            if progress is not None:
                progress(
                    counts["examples"],
                    counts["faults"],
                    len(RUNS.by_kind(type(self))),
                    time.monotonic() - started,
                )

    Run.__name__ = Run.__qualname__ = scenario.__name__
    # A client machine drives a client the machine runs (its factory); a service machine, a
    # service (a factory, or the URL of one in another process).
    role = "client" if issubclass(scenario, ClientChaosMachine) else "service"
    if role == "client" and upstream is not None:
        raise InvalidArgument(
            f"{scenario.__name__} tests a client: it runs against the embedded IdP, not --upstream"
        )
    attributes: dict[str, Any] = {
        role: service if isinstance(service, str) else staticmethod(service),
        "routes": {route: frozenset(scopes) for route, scopes in routes.items()},
        "policy": policy if policy is not None else scenario.policy,
        "listen": listen,
        "control_listen": control_listen,
        "service_listen": service_listen,
        "upstream": upstream,
        "test_clients": parsed_clients,
        "allow_origins": tuple(allow_origins),
        "suppress_vacuity": check_names("suppress", suppress) | set(scenario.suppress_vacuity),
        "require_coverage": (*scenario.require_coverage, *require_coverage),
        "max_wait": float(max_wait) if max_wait is not None else scenario.max_wait,
        "shrink_budget": (
            float(shrink_budget) if shrink_budget is not None else scenario.shrink_budget
        ),
    }
    attributes.update(wiring)
    for name, value in attributes.items():
        setattr(Run, name, value)
    try:  # wrong wiring is the user's error now, not an example's
        Wiring.from_machine(Run, frozenset(Run.scopes))
    except TypeError as error:
        raise InvalidArgument(str(error)) from None
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgument(f"seed={seed!r} must be an int")
        Run._hypothesis_internal_use_seed = seed  # what @hypothesis.seed marks a test with
    failure: str | None = None
    notebooks_written: list[Path] = []
    revocations: dict[str, int] = {}
    vacuous = False
    try:
        Run.run(
            notebooks=None,
            quiet=True,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                derandomize=seed is None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
            ),
        )
    except VacuousRun as error:
        failure, vacuous = str(error).partition(": no verdict: ")[2] or str(error), True
    except (AssertionError, ExceptionGroup) as error:
        if isinstance(error, ExceptionGroup):
            errors = error.subgroup(AssertionError)
            if errors is None:
                raise
            found: list[BaseException] = list(errors.exceptions)
        else:
            found = [error]
        failure = "\n\n".join(
            f"{each}\n{chr(10).join(getattr(each, '__notes__', []))}".rstrip() for each in found
        )
        if isinstance(error, ExceptionGroup):  # the run's own notes (minimised failures)
            failure = "\n".join([failure, *getattr(error, "__notes__", [])])
        if notebooks is not None:
            from jitchaos._failure import write_repro

            notebooks_written = [
                write_repro(record, notebooks, execute=execute) for record in Run.failures()
            ]
    finally:
        started_world = Run._worlds.pop(Run, None)
        if started_world is not None:
            revocations = dict(getattr(started_world, "revocations", {}))
            started_world.close()
    counted = RUNS.counts(Run)
    return RunOutcome(
        counted.generated if counted is not None else counts["examples"],
        counts["faults"],
        time.monotonic() - started,
        failure,
        Run.report(),
        record=(Run.failures() or (None,))[0] if failure is not None else None,
        notebook=notebooks_written[0] if notebooks_written else None,
        persistent=isinstance(service, str),
        records=Run.failures() if failure is not None else (),
        notebooks=tuple(notebooks_written),
        shrinking=counted.shrinking if counted is not None else 0,
        to_first_failure=counted.to_first_failure if counted is not None else None,
        world="staging" if upstream is not None else "embedded",
        revocations=revocations,
        vacuous=vacuous,
        seconds_to_first_failure=(
            first - started if (first := RUNS.first_failed_at(Run)) is not None else None
        ),
    )


def _check_reachable(url: str) -> None:
    try:
        exchange("GET", url, timeout=5)  # any answer will do
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise InvalidArgument(f"service {url!r} does not answer: {reason}") from None
