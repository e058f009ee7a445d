"""A longer fuzz of the proxy's three listeners than the suite's (tests/proxy/test_fuzz.py, 300
requests each): the same raw, mangled requests (methods, targets over 8 KiB, header fields,
Content-Encoding labels on bodies that are not so encoded, absurd chunk sizes), counted by the
answer's status class. The goal (issue #20): no 5xx and no connection closed without an
answer, on any listener; the service side never records a decision for a request the proxy
refused itself. Any miss is printed with the request that made it (the control secret
masked), and the exit status is 1.

Usage: python bench/fuzz.py [--requests N] [--seed S]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.proxy.test_fuzz import WELL_FORMED, listening, raw_requests, status_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="per listener")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    failed = False
    print(
        f"{'listener':<14} {'requests':>8} {'2xx/3xx':>8} {'4xx':>8} {'5xx':>5} "
        f"{'no answer':>9} {'req/s':>7}"
    )
    with listening() as listeners:
        secret = listeners["secret"]
        for listener in WELL_FORMED:
            counts, misses, seconds = _fuzz(listener, listeners, args.requests, args.seed)
            total = sum(counts.values())
            print(
                f"{listener:<14} {total:>8} {counts['2xx/3xx']:>8} {counts['4xx']:>8} "
                f"{counts['5xx']:>5} {counts['no answer']:>9} {total / seconds:>7.0f}"
            )
            for miss in misses[:5]:
                print("   ", miss.replace(secret, "SECRET"))
            failed = failed or bool(misses)
    print("goal: no 5xx and no unanswered request on any listener:", "missed" if failed else "met")
    return 1 if failed else 0


def _fuzz(
    listener: str, listeners: dict[str, Any], requests: int, start: int
) -> tuple[collections.Counter[str], list[str], float]:
    """``requests`` mangled requests at one listener: counts by status class, the misses."""
    port, secret = listeners[listener], listeners["secret"]
    counts: collections.Counter[str] = collections.Counter()
    misses: list[str] = []

    @seed(start)
    @settings(
        max_examples=requests,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(raw=raw_requests(secret if listener == "control API" else None))
    def one(raw: bytes) -> None:
        try:
            status = status_of(port, raw)
        except (AssertionError, OSError) as error:
            counts["no answer"] += 1
            misses.append(f"no answer ({error}): {raw[:200]!r}")
            return
        kind = "5xx" if status >= 500 else "4xx" if status >= 400 else "2xx/3xx"
        counts[kind] += 1
        if status >= 500:
            misses.append(f"{status}: {raw[:200]!r}")

    started = time.monotonic()
    one()
    return counts, misses, time.monotonic() - started


if __name__ == "__main__":
    sys.exit(main())
