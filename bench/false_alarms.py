"""A soak for false alarms: every known-bug service's correct twin under its machine, for many
random examples over several seeds. Any violation is a false alarm: in the checker, the
machine, or a twin that is not as correct as it claims.

The tests run each twin for 200 derandomized examples; this goes further and differently.
It found the checker's temporal-edge and strict-profile-only hostile tokens, and the
jwks_wiped twin's 401 during a JWKS outage, none of which 60 derandomized examples had shown.

Then the correct services built on real stacks (examples/stacks: PyJWT's PyJWKClient, Authlib,
jose), each in its own process with its library's defaults, under every scenario of the
catalogue for ``--stack-examples`` examples (300): one row each (not with ``--only``).

Usage: python bench/false_alarms.py [--seeds N] [--first S] [--examples N] [--only NAME]
       [--stack-examples N] [--stacks-only]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from bench.time_to_bug import CASES, machine_class
from examples.stacks import STACKS, run_catalogue

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--only", choices=[c.name for c in CASES], action="append")
    parser.add_argument("--stack-examples", type=int, default=300)
    parser.add_argument("--stacks-only", action="store_true", help="only the real-stack rows")
    args = parser.parse_args()
    soak = settings(
        max_examples=args.examples,
        stateful_step_count=10,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    alarms = 0
    for case in CASES:
        if args.stacks_only or (args.only and case.name not in args.only):
            continue
        machine = machine_class(case)
        twin = staticmethod(functools.partial(case.factory, fixed=True))
        setattr(machine, "client" if case.client else "service", twin)
        for seed in range(args.first, args.first + args.seeds):
            machine._hypothesis_internal_use_seed = seed
            started = time.perf_counter()
            try:
                run_state_machine_as_test(machine, settings=soak)
            except AssertionError as error:
                alarms += 1
                notes = "\n".join(getattr(error, "__notes__", []))
                print(f"{case.name} seed {seed}: FALSE ALARM\n{error}\n{notes}\n", flush=True)
                continue
            seconds = time.perf_counter() - started
            print(f"{case.name} seed {seed}: clean ({seconds:.0f} s)", flush=True)
    if args.stacks_only or not args.only:  # --only picks known-bug cases alone
        alarms += _stacks(args.stack_examples)
    print(f"\n{alarms} false alarm(s)")
    return 1 if alarms else 0


def _stacks(examples: int) -> int:
    """One row per real-stack service and catalogue scenario; the number of false alarms."""
    alarms = 0
    print(f"\n{'stack':8} {'scenario':28} {'examples':>8} {'faults':>7} {'seconds':>7}  verdict")
    for stack in STACKS:
        for path in sorted((ROOT / "strategies").glob("[!_]*.py")):
            outcome = run_catalogue(stack, path.stem, examples)
            verdict = "clean" if outcome.failure is None else "FALSE ALARM"
            print(
                f"{stack:8} {path.stem:28} {outcome.examples:>8} {outcome.faults:>7} "
                f"{outcome.seconds:>7.0f}  {verdict}",
                flush=True,
            )
            if outcome.failure is not None:
                alarms += 1
                print(outcome.failure, flush=True)
    return alarms


if __name__ == "__main__":
    sys.exit(main())
