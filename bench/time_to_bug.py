"""How fast the stateful machines find each known bug, against a naive fault injector.

For each known-bug service (``jitchaos/known_bugs``) and each seed: Hypothesis runs the machine
(``run_state_machine_as_test``, 10 steps per example, seeded per seed so a seed's run is
reproducible) until the invariant fails, then shrinks. Reported: examples and seconds to the
first failing example (search only), seconds including the shrink, and the length of the
shrunk sequence. The naive injector drives the same machine's rules with ``random.Random(seed)``
and no Hypothesis: one rule per step, a fault (revoke, narrow, expire, rotate_keys, outage) with
probability ``--rate``, else traffic (grant, login, refresh, call, advance, use, burst), every
argument uniform (clock moves of 1..3600 s), the checker after every step, a fresh machine every
10 steps. Both stop at ``--budget`` seconds per seed ("not found"). Each bug's hand-written
minimal sequence is replayed first, so the lengths compared against are checked in the same run.

Targets (from the issue): every bug found in every seed within 60 s; median time to bug at
least 5x lower than the naive injector's; shrunk sequences no longer than the hand-written
minimal one plus one step.

Usage: python bench/time_to_bug.py [--seeds N] [--budget S] [--rate P] [--only NAME] [--quick]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import attrs
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from bench._naive import Step, naive_run, replay
from jitchaos import AuthChaosMachine, ClientChaosMachine, Policy
from jitchaos.known_bugs import (
    concurrent_refresh,
    introspection_cache,
    jwks_cache,
    jwks_wiped,
    permission_cache,
    refresh_on_timer,
    shared_cache,
    stateless_jwt,
)

ROUTES = {"GET /read": {"read"}, "POST /write": {"write"}}
SLACK = 1
"""How many steps a shrunk sequence may have beyond the hand-written minimal one."""
SPEEDUP = 5.0
"""How many times lower the median time to bug must be than the naive injector's."""


def _grant(scopes: str, route: str) -> Step:
    return "grant", {"scopes": frozenset(scopes.split()), "route": route}


def _login(user: str, scopes: str, route: str) -> Step:
    return "login", {"user": user, "scopes": frozenset(scopes.split()), "route": route}


@attrs.frozen
class Case:
    """A known bug: its service (or client), policy, what the checker calls it, and the
    shortest sequence of rules known to show it (verified by replay in every run)."""

    factory: Callable[..., Any]
    policy: Policy
    kinds: frozenset[str]
    minimal: tuple[Step, ...]
    client: bool = False
    actions: frozenset[str] | None = None

    @property
    def name(self) -> str:
        return str(self.factory.__module__).rsplit(".", 1)[-1]


CASES = [
    Case(
        permission_cache.make_app,
        Policy(staleness=30),
        frozenset({"narrowed-scope-honoured", "valid-token-rejected", "scope-not-enforced"}),
        # The subject's first token decides: a later one with more scopes is refused.
        (_grant("read", "GET /read"), _grant("read write", "POST /write")),
    ),
    Case(
        introspection_cache.make_app,
        Policy(staleness=30),
        frozenset({"revoked-token-accepted", "narrowed-scope-honoured", "expired-token-accepted"}),
        # The token was cached by its first use; past the 30 s window it is still accepted.
        (
            _grant("read", "GET /read"),
            ("revoke", {"token": 0, "whole_grant": False}),
            ("advance", {"seconds": 31}),
        ),
    ),
    Case(
        jwks_cache.make_app,
        # Its twin keeps a key it knows until the tokens it signed expire.
        Policy(staleness=300, key_staleness=300),
        frozenset({"valid-token-rejected"}),
        # A token signed by the new kid is refused past any key cache's excuse: the JWKS was
        # fetched once, before it.
        (
            _grant("read", "GET /read"),
            ("rotate_keys", {"mode": "add"}),
            ("advance", {"seconds": 301}),
            _grant("read", "GET /read"),
        ),
    ),
    Case(
        jwks_wiped.make_app,
        Policy(staleness=300, key_staleness=60),
        frozenset({"valid-token-rejected"}),
        # The first JWKS fetch fails: a valid token is refused (401), not "unavailable" (503).
        # (Or: grant; outage; advance past the 60 s refresh, which fails and wipes the keys.)
        (("outage", {"endpoint": "jwks", "seconds": 10}), _grant("read", "GET /read")),
    ),
    Case(
        stateless_jwt.make_app,
        Policy(staleness=30, key_staleness=300),
        frozenset({"revoked-token-accepted", "narrowed-scope-honoured", "expired-token-accepted"}),
        # Nothing asks the IdP: a revoked token is accepted at once, past no window at all.
        (
            _grant("read", "GET /read"),
            ("revoke", {"token": 0, "whole_grant": False}),
            ("advance", {"seconds": 31}),
        ),
    ),
    Case(
        shared_cache.make_app,
        Policy(staleness=30),
        frozenset({"cross-principal-leak"}),
        # Alice's permissions, cached for the app, let Bob (read only) write.
        (
            _login("alice", "read write", "GET /read"),
            _login("bob", "read", "POST /write"),
        ),
        actions=AuthChaosMachine.all_actions - {"grant"},
    ),
    Case(
        refresh_on_timer.make_app,
        Policy(recovery=1),
        frozenset({"no-recovery-after-revoke"}),
        # Refused as dead, the token is presented again 2 s later: the timer has not run out.
        (
            ("use", {"route": "GET /read"}),
            ("revoke", {"whole_grant": False}),
            ("use", {"route": "GET /read"}),
            ("advance", {"seconds": 2}),
        ),
        client=True,
    ),
    Case(
        concurrent_refresh.make_app,
        Policy(),
        frozenset({"refresh-storm"}),
        # Two requests find the expired token at once and both exchange the refresh token.
        (
            ("use", {"route": "GET /read"}),
            ("expire", {}),
            ("burst", {"route": "GET /read", "n": 2}),
        ),
        client=True,
    ),
]


@attrs.define
class _Tally:
    """What one seed's Hypothesis run counts (the machine class holds the current one)."""

    budget: float
    started: float = attrs.field(factory=time.perf_counter)
    examples: int = 0
    found_at: float | None = None
    first_kinds: frozenset[str] = frozenset()


class _Stop(BaseException):
    """The budget ran out: not an Exception, so Hypothesis does not take it for a failure."""


def machine_class(case: Case) -> type[Any]:
    """The machine of the tests (tests/stateful/test_known_bugs.py), counting its examples."""
    base: type[Any] = ClientChaosMachine if case.client else AuthChaosMachine

    class Bench(base):  # type: ignore[misc]
        tally: ClassVar[_Tally | None] = None

        def __init__(self) -> None:
            tally = type(self).tally
            if tally is not None and tally.found_at is None:
                if time.perf_counter() - tally.started > tally.budget:
                    raise _Stop
                tally.examples += 1
            super().__init__()

        def violations(self) -> Any:
            found = super().violations()
            tally = type(self).tally
            if found and tally is not None and tally.found_at is None:
                tally.found_at = time.perf_counter()
                tally.first_kinds = frozenset(v.kind for v in found)
            return found

    setattr(Bench, "client" if case.client else "service", staticmethod(case.factory))
    Bench.routes = ROUTES
    Bench.policy = case.policy
    Bench.actions = case.actions
    Bench.__name__ = Bench.__qualname__ = f"Machine_{case.name}"
    return Bench


SEARCH = settings(
    max_examples=1_000_000,  # the budget stops the search, not a count
    stateful_step_count=10,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    # Shrink the first failure at once (by default Hypothesis keeps generating for up to 10 s
    # more, looking for other bugs): time to bug and time to a shrunk report stay apart.
    report_multiple_bugs=False,
)


@attrs.frozen
class HypothesisRun:
    examples: int
    """Examples started up to the first failing one (shrinking not counted)."""
    to_bug: float | None
    """Seconds to the first failing example; None: not found within the budget."""
    total: float
    """Seconds including the shrink."""
    shrunk: int | None
    """Steps in the shrunk sequence."""
    first_kinds: frozenset[str] = frozenset()
    """The violations of the first failing example."""
    kinds: frozenset[str] = frozenset()
    """The violations of the shrunk one (shrinking keeps the failure, maybe not its kind)."""
    error: str = ""


def hypothesis_run(machine: type[Any], seed: int, budget: float) -> HypothesisRun:
    machine._hypothesis_internal_use_seed = seed  # what @hypothesis.seed sets
    tally = machine.tally = _Tally(budget)
    try:
        run_state_machine_as_test(machine, settings=SEARCH)
    except _Stop:
        return HypothesisRun(tally.examples, None, time.perf_counter() - tally.started, None)
    except Exception as error:
        to_bug = None if tally.found_at is None else tally.found_at - tally.started
        kinds = frozenset(re.findall(r"^\[([a-z-]+)\]", str(error), re.MULTILINE))
        odd = "" if isinstance(error, AssertionError) else f"{type(error).__name__}: {error}"
        # Hypothesis's shrink, then the machine's own pass over the recorded failure (what a
        # user's report and repro notebook show, and what Machine.run does).
        minimal = machine.minimize() if not odd else None
        shrunk = len(minimal.steps) if minimal is not None else None
        if minimal is not None:
            kinds = minimal.kinds
        total = time.perf_counter() - tally.started
        first = tally.first_kinds
        return HypothesisRun(tally.examples, to_bug, total, shrunk, first, kinds, odd[:300])
    finally:
        machine.tally = None
    total = time.perf_counter() - tally.started
    return HypothesisRun(tally.examples, None, total, None, error="max_examples ran out")


def median(values: Sequence[float | None]) -> float:
    """Not found counts as infinitely late (so more than half not found: inf)."""
    return statistics.median([math.inf if v is None else v for v in values])


def fmt(seconds: float, budget: float) -> str:
    return f"> {budget:g}" if math.isinf(seconds) else f"{seconds:.2f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def describe(name: str, seed: int, run: HypothesisRun, naive: tuple[float | None, int]) -> str:
    if run.to_bug is None:
        ours = f"not found ({run.examples} examples)"
    else:
        ours = (
            f"{run.examples} examples, {run.to_bug:.2f} s, total {run.total:.2f} s, first "
            f"{sorted(run.first_kinds)}, shrunk to {run.shrunk} steps {sorted(run.kinds)}"
        )
    theirs = "not found" if naive[0] is None else f"{naive[0]:.2f} s"
    odd = f" [{run.error}]" if run.error else ""
    return f"{name} seed {seed}: Hypothesis {ours}{odd}; naive {theirs} ({naive[1]} examples)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per seed and side")
    parser.add_argument("--rate", type=float, default=0.2, help="the naive fault probability")
    parser.add_argument("--only", choices=[c.name for c in CASES], action="append")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 20 s budget")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget = 3, 20.0
    cases = [c for c in CASES if not args.only or c.name in args.only]
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    found_all, fast_enough, short_enough = True, True, True
    started = time.perf_counter()
    for case in cases:
        machine = machine_class(case)
        # The hand-written minimal sequence (this also starts the machine's world: IdP, proxy).
        shown = {v.kind for v in replay(machine, case.minimal)}
        if not shown & case.kinds:
            print(f"{case.name}: the minimal sequence shows {sorted(shown)}", file=sys.stderr)
            return 1
        minimal = len(case.minimal)
        runs: list[HypothesisRun] = []
        naive: list[float | None] = []
        naive_examples: list[int] = []
        naive_kinds: Counter[str] = Counter()
        for seed in range(args.seeds):
            run = hypothesis_run(machine, seed, args.budget)
            to_bug, examples, kinds = naive_run(machine, seed, rate=args.rate, budget=args.budget)
            runs.append(run)
            naive.append(to_bug)
            if to_bug is not None:
                naive_examples.append(examples)
            naive_kinds.update(kinds)
            print(describe(case.name, seed, run, (to_bug, examples)), file=sys.stderr, flush=True)
        # Any violation counts as the bug: each service has one, and its correct twin runs
        # without alarm (tests/stateful). Which kinds showed is reported below the table.
        hits = [r for r in runs if r.to_bug is not None]
        shrunk = [r.shrunk for r in hits if r.shrunk is not None]
        ours = median([r.to_bug for r in runs])
        theirs = median(naive)
        longest = max(shrunk, default=0)
        found_all &= len(hits) == len(runs)
        short_enough &= len(shrunk) == len(hits) and longest <= minimal + SLACK
        # Not found counts as infinite, so a ratio with an infinite side is only a bound.
        if math.isinf(ours):
            ratio, fast = "-", False
        elif math.isinf(theirs):
            bound = args.budget / ours
            ratio, fast = f"> {bound:.1f}", bound >= SPEEDUP
        else:
            ratio, fast = f"{theirs / ours:.2f}", theirs / ours >= SPEEDUP
        fast_enough &= fast
        examples_median = statistics.median([r.examples for r in hits]) if hits else math.nan
        rows.append(
            (
                case.name,
                f"{examples_median:g}",
                fmt(ours, args.budget),
                fmt(max((r.to_bug or 0.0 for r in hits), default=math.inf), args.budget),
                f"{len(hits)}/{len(runs)}",
                fmt(
                    median([r.total if r.to_bug is not None else None for r in runs]), args.budget
                ),
                f"{longest} / {minimal}",
                f"{statistics.median(naive_examples):g}" if naive_examples else "-",
                fmt(theirs, args.budget),
                f"{sum(t is not None for t in naive)}/{len(naive)}",
                ratio,
            )
        )
        first = Counter(k for r in hits for k in r.first_kinds)
        last = Counter(k for r in hits for k in r.kinds)
        notes.append(
            f"- {case.name} (expected {', '.join(sorted(case.kinds))}): first failures "
            f"{_counts(first)}; shrunk {_counts(last)}; naive {_counts(naive_kinds)}"
        )
        errors = [r.error for r in runs if r.error]
        notes.extend(f"  - {case.name}: {error}" for error in errors)
    elapsed = time.perf_counter() - started
    print(
        f"\n{args.seeds} seeds per bug, {args.budget:g} s budget per seed and side, naive fault "
        f"rate {args.rate:g}; {elapsed / 60:.1f} min in all\n"
    )
    print(
        "| bug | examples to bug (median) | s to bug (median) | s to bug (max) | found "
        "| s with shrink (median) | shrunk steps (max) / minimal "
        "| naive examples to bug (median) | naive s to bug (median) | naive found "
        "| naive / Hypothesis |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nviolation kinds, counted over seeds:")
    print("\n".join(notes))
    print("\ntargets:")
    print(f"- every bug found in every seed within {args.budget:g} s: {verdict(found_all)}")
    print(f"- median time to bug >= {SPEEDUP:g}x lower than naive: {verdict(fast_enough)}")
    print(f"- shrunk sequence <= minimal + {SLACK} step: {verdict(short_enough)}")
    return 0


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counter.most_common()) or "none"


if __name__ == "__main__":
    sys.exit(main())
