"""Running a machine class: its run report over every example, the failing example Hypothesis
shrank to, minimising that further by replay, and writing it as a repro notebook.

The machines (``_stateful.py``) say what a step does and what an example found; this module
says what a run of many examples comes to. The import chain runs one way: the machines import
the runner, never the other way at run time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import settings as Settings
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from hypothesis.statistics import collector

from jitchaos._coverage import CoverageCell
from jitchaos._failure import Failure, Step, told, write_ready_repro, write_repro
from jitchaos._report import RunReport
from jitchaos._vacuity import VacuousRun, check_names, uncovered, vacuity
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._stateful import _ChaosMachine

    Machine = type[_ChaosMachine]

__all__ = ["Counts", "Runs", "minimize", "run"]


@attrs.frozen
class Counts:
    """How many examples a run spent on what, as Hypothesis counted them."""

    generated: int
    """Examples generated and run to the end or to a failure (``max_examples`` bounds those
    that passed, failing ones come on top; those Hypothesis threw away half-drawn are not
    examples)."""
    shrinking: int
    """Examples run while shrinking failures (and replaying each shrunk failure)."""
    to_first_failure: int | None
    """Which generated example failed first (1-based); None when none did."""

    def format(self) -> str:
        first = (
            f"; the first failure at example {self.to_first_failure}"
            if self.to_first_failure is not None
            else ""
        )
        spent = f", {self.shrinking} more spent shrinking" if self.shrinking else ""
        return f"{self.generated} examples generated{first}{spent}"

    @classmethod
    def from_statistics(cls, stats: dict[str, Any]) -> Counts:
        """From the statistics Hypothesis notes at the end of a test (the format its pytest
        plugin's ``--hypothesis-show-statistics`` reads)."""
        generated, first = 0, None
        for case in stats.get("generate-phase", {}).get("test-cases", []):
            if case["status"] in ("valid", "interesting"):
                generated += 1
                if case["status"] == "interesting" and first is None:
                    first = generated
        shrinking = len(stats.get("shrink-phase", {}).get("test-cases", []))
        return cls(generated, shrinking, first)


class Runs:
    """What each machine class's examples came to: the run report merged over them, and its
    failing examples, one for each violation kind an example raised (the shrunk one, after a
    run: Hypothesis runs each last)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[type, RunReport] = {}
        self._failures: dict[type, dict[str, Failure]] = {}
        self._last: dict[type, Failure] = {}
        self._counts: dict[type, Counts] = {}
        self._first_failed: dict[type, float] = {}

    def report(self, cls: type) -> RunReport:
        with self._lock:
            return self._reports.get(cls, RunReport())

    def saved_report(self, cls: type) -> RunReport | None:
        """``cls``'s report as it stands, None when it has none (for :meth:`set_report`)."""
        with self._lock:
            return self._reports.get(cls)

    def add_example(self, cls: type, report: RunReport) -> None:
        with self._lock:
            self._reports[cls] = self._reports.get(cls, RunReport()).merge(report)

    def set_report(self, cls: type, report: RunReport | None) -> None:
        with self._lock:
            if report is None:
                self._reports.pop(cls, None)
            else:
                self._reports[cls] = report

    def failure(self, cls: type) -> Failure | None:
        """The failing example remembered last."""
        with self._lock:
            return self._last.get(cls)

    def failures(self, cls: type) -> tuple[Failure, ...]:
        """One failing example for each violation kind raised, in the order first raised."""
        with self._lock:
            return tuple(self._failures.get(cls, {}).values())

    def failed(self, cls: type, failure: Failure | None, *, kind: str | None = None) -> None:
        """Remember ``failure`` as ``cls``'s failing example of the kind it raised (its first
        violation's, or ``kind``) and as its last; None forgets them all."""
        with self._lock:
            if failure is None:
                self._failures.pop(cls, None)
                self._last.pop(cls, None)
                self._first_failed.pop(cls, None)
                return
            self._first_failed.setdefault(cls, time.monotonic())
            raised = kind if kind is not None else failure.violations[0].distinct
            self._failures.setdefault(cls, {})[raised] = failure
            self._last[cls] = failure

    def first_failed_at(self, cls: type) -> float | None:
        """When (``time.monotonic()``) ``cls``'s run first found a failure."""
        with self._lock:
            return self._first_failed.get(cls)

    def counts(self, cls: type) -> Counts | None:
        """What ``cls``'s last :func:`run` spent its examples on."""
        with self._lock:
            return self._counts.get(cls)

    def counted(self, cls: type, counts: Counts) -> None:
        with self._lock:
            self._counts[cls] = counts

    def set_last(self, cls: type, failure: Failure) -> None:
        with self._lock:
            self._last[cls] = failure

    def by_kind(self, cls: type) -> dict[str, Failure]:
        """The failing examples by the violation kind each raised (a copy)."""
        with self._lock:
            return dict(self._failures.get(cls, {}))


RUNS = Runs()


def run(
    cls: Machine,
    *,
    settings: Settings | None,
    notebooks: str | os.PathLike[str] | None,
    quiet: bool,
) -> None:
    """Run ``cls`` under Hypothesis and print its run report (unless ``quiet``). On failure
    the report goes into the error's notes, and each distinct failure found (one for each
    violation kind: Hypothesis shrinks and reports each) is minimised and written as a repro
    notebook with its JSON into ``notebooks``. Several failures raise Hypothesis's
    ``ExceptionGroup`` of them."""
    RUNS.failed(cls, None)
    # Started before Hypothesis runs: a world that cannot start (a provider that is none, a
    # refused client, a busy port) is the user's error, not an example to shrink.
    required = [CoverageCell.parse(text) for text in _cells(cls)]
    world = cls.world_of()

    def counted(stats: Any) -> None:
        RUNS.counted(cls, Counts.from_statistics(stats))

    budget = None if world.manual else cls.shrink_budget
    try:
        # Hypothesis's statistics hook (what its pytest plugin reads); typed as None there.
        with collector.with_value(counted), _shrinking_within(budget):  # type: ignore[arg-type]
            _unflaky(cls, settings)
    except (AssertionError, ExceptionGroup) as error:
        if isinstance(error, ExceptionGroup) and error.subgroup(AssertionError) is None:
            raise
        if not quiet:
            error.add_note(f"run report:\n{RUNS.report(cls).format()}")
        shrunk = RUNS.by_kind(cls)
        minimize(cls)
        for kind, failure in RUNS.by_kind(cls).items():
            before = shrunk.get(kind)
            if before is not None and failure is not before:
                rules = ", ".join(step.rule for step in failure.steps)
                error.add_note(
                    f"jitchaos: {kind} also shows with {len(failure.steps)} of those "
                    f"{len(before.steps)} steps: {rules}"
                )
            if notebooks is not None:
                try:
                    if cls.execute_notebooks:
                        path, why_not = write_ready_repro(failure, notebooks)
                    else:
                        path, why_not = write_repro(failure, notebooks), "execute_notebooks off"
                except (OSError, ImportError) as problem:
                    error.add_note(f"jitchaos: could not write a repro notebook: {problem}")
                else:
                    error.add_note(f"jitchaos: {kind}: repro notebook {told(path, why_not)}")
        raise
    # No verdict without evidence: a clean run must have judged something.
    suppressed = check_names(f"{cls.__name__}.suppress_vacuity", cls.suppress_vacuity)
    why = vacuity(RUNS.report(cls), suppressed) or uncovered(RUNS.report(cls), required)
    if why is not None:
        raise VacuousRun(f"{cls.__name__}: no verdict: {why}")
    if not quiet:
        print(f"{cls.__name__}: no violation\n{RUNS.report(cls).format()}")


def _cells(cls: Machine) -> Collection[str]:
    cells = cls.require_coverage
    if isinstance(cells, str) or not isinstance(cells, Collection):
        raise InvalidArgument(
            f"{cls.__name__}.require_coverage={cells!r} must be a collection of cells "
            "('STATE[:FAULT[:ROUTE]]')"
        )
    return cells


def _unflaky(cls: Machine, settings: Settings | None) -> None:
    """Run ``cls`` under Hypothesis; a violation it found but could not replay the same way
    is raised as that violation, not as Hypothesis's ``Flaky`` error. A system in its own
    process on the wall clock keeps its caches and tokens between examples, so the replay of
    a failing example can fail at another step, or pass: Hypothesis then stops with "Data
    generation behaved differently between test cases" and the violation it had found, and the
    example it was found in, would be lost behind a traceback."""
    try:
        run_state_machine_as_test(cls, settings=settings)
    except Flaky as flaky:
        found = _violation_behind(flaky)
        if found is None:
            raise
        found.add_note(
            "jitchaos: Hypothesis could not replay this failure the same way (the system under "
            "test keeps state or time of its own between examples), so it is shown as found, "
            f"not shrunk ({type(flaky).__name__})"
        )
        raise found from None


def _violation_behind(error: BaseException) -> AssertionError | None:
    """The violation a ``Flaky`` error was raised while handling, or holds in its group."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, AssertionError) and not isinstance(current, Flaky):
            return current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


@contextmanager
def _shrinking_within(seconds: float | None) -> Iterator[None]:
    """Bound Hypothesis's shrinking by ``seconds`` of time (None: its own limit). On the wall
    clock every shrink attempt waits for real; Hypothesis stops shrinking once its engine's
    ``MAX_SHRINKING_SECONDS`` have passed (five minutes, its issue 2340) and keeps the
    smallest failure found so far. Its warning then (five minutes, please report) is replaced
    by one line saying the budget was spent."""
    from hypothesis.internal.conjecture import engine
    from hypothesis.reporting import current_reporter, with_reporter

    saved = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if seconds is None or saved is None:
        yield
        return
    outer = current_reporter()

    def reporter(value: object) -> None:
        if isinstance(value, str) and "spent more than five minutes working to shrink" in value:
            value = f"jitchaos: shrinking stopped after its budget of {seconds:g}s"
        outer(value)

    engine.MAX_SHRINKING_SECONDS = max(1, int(seconds))
    try:
        with with_reporter(reporter):
            yield
    finally:
        engine.MAX_SHRINKING_SECONDS = saved


def minimize(cls: Machine) -> Failure | None:
    """Drop from each of ``cls``'s failures, one at a time until none can go, every step it
    still shows a violation of the same kind without, and remember the results; returns the
    last failure, minimised. Hypothesis's shrinker can stop at a local minimum: a step whose
    removal shifts the choices after it stays. Replays run on fresh examples of the machine; a
    service in another process keeps its caches between them, so its failures are left as
    they are, and so are those on the wall clock."""
    last = RUNS.failure(cls)
    world = cls._worlds.get(cls)
    if (
        last is None
        or not cls._in_process()
        or (world is not None and not world.manual)  # replays on the wall clock wait for real
    ):
        return last
    saved = RUNS.saved_report(cls)
    try:
        for kind, failure in RUNS.by_kind(cls).items():
            best = _minimized(cls, failure)
            RUNS.failed(cls, best, kind=kind)
            if failure is last:
                last = best
    finally:
        RUNS.set_report(cls, saved)  # the replays are not examples of the run
    RUNS.set_last(cls, last)
    return last


def _minimized(cls: Machine, failure: Failure) -> Failure:
    kinds = failure.distinct
    best = failure
    dropped = True
    while dropped and len(best.steps) > 1:
        dropped = False
        for i in range(len(best.steps)):
            shorter = _replayed(cls, best.steps[:i] + best.steps[i + 1 :], kinds)
            if shorter is not None:
                best, dropped = shorter, True
                break
    return best


def _replayed(cls: Machine, steps: Sequence[Step], kinds: frozenset[str]) -> Failure | None:
    """The failure record of ``steps`` replayed on a fresh example, when it shows one of
    ``kinds`` (kinds, with attack classes: see ``Failure.distinct``); None when it does not,
    or does not run (a token it uses is gone)."""
    machine = cls()
    try:
        for step in steps:
            machine.replay_step(step)
        found = machine.violations()
    except Exception:  # any step that cannot run rules the candidate out
        return None
    finally:
        machine.teardown()
    if not {v.distinct for v in found} & kinds:
        return None
    return machine.failure(found)
