"""How fast the token strategies generate, in examples per second (RS256).

Signing dominates: keys are generated once per key ring (and the attacker's key once per
process), never per example. Target: at least 500 tokens/s from tokens() on a 2-core machine.

Usage: python bench/strategies.py [--examples N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from jitchaos import KeyRing, mint_access_token
from jitchaos.strategies import hostile_tokens, tokens


def rate(strategy: st.SearchStrategy[object], examples: int) -> float:
    count = 0

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(value: object) -> None:
        nonlocal count
        count += 1

    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ring = KeyRing("RS256")
    legit = mint_access_token(
        ring.current,
        issuer="https://idp.example",
        audience="api",
        subject="alice",
        client_id="web",
        scopes={"read", "write"},
        issued_at=1_800_000_000,
        expires_at=1_800_000_300,
    )
    cases: dict[str, Callable[[], st.SearchStrategy[object]]] = {
        "tokens() RS256": lambda: tokens(keys=ring, issuer="https://idp.example", audience="api"),
        "hostile_tokens()": lambda: hostile_tokens(legitimate=legit, keys=ring),
        "st.just (Hypothesis overhead)": lambda: st.just(legit),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):  # interleaved, so machine noise hits every case alike
        for name, make in cases.items():
            results[name].append(rate(make(), args.examples))
    print(f"{args.rounds} rounds x {args.examples} examples; median of the rounds\n")
    print("| strategy | examples/s |")
    print("|---|---:|")
    for name, rates in results.items():
        print(f"| {name} | {statistics.median(rates):.0f} |")
    typical = statistics.median(results["tokens() RS256"])
    print(f"\ntarget >= 500 tokens/s from tokens(): {'met' if typical >= 500 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
