"""The load generator, in its own process: CONCURRENCY clients posting client_credentials token
requests for DURATION seconds. Prints one JSON line: requests, errors, rps, p50/p99 in ms.

Usage: python -m bench._load URL DURATION CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp

BODY = b"grant_type=client_credentials&scope=read+write"
HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "Authorization": aiohttp.encode_basic_auth("svc", "svc-secret"),
}


async def run(url: str, duration: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(until: float) -> None:
            nonlocal errors
            while (start := time.perf_counter()) < until:
                try:
                    async with session.post(url, data=BODY, headers=HEADERS) as answer:
                        await answer.read()
                        ok = answer.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        warm = time.perf_counter() + 0.3
        await asyncio.gather(*(client(warm) for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        began = time.perf_counter()
        await asyncio.gather(*(client(began + duration) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return (
            1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0
        )

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    url, duration, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(run(url, duration, concurrency))), flush=True)


if __name__ == "__main__":
    main()
