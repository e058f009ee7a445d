"""Memory of a long-running proxy (issue #20 point 1): `jitchaos proxy --upstream embedded` in
its own process, with an audit log and a horizon, minting short-lived tokens at full rate
(grants opening and closing all the time) for --minutes. Its resident memory is sampled every
few seconds from /proc. The goal: after the first minute, memory stays within 10% of its
level then (the horizon lets closed grants go; the audit log keeps them). --no-horizon runs
the same without one, for the growth per token it would have.

Usage: python bench/memory.py [--minutes M] [--ttl S] [--horizon S] [--no-horizon]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from examples.stacks import free_port

_KIB = 1024


def rss(pid: int) -> int:
    """Resident memory of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * _KIB
    raise RuntimeError(f"no VmRSS for {pid}")


async def load(url: str, until: float, counts: list[int], concurrency: int) -> None:
    """Mint tokens at ``url`` with ``concurrency`` clients until ``until`` (monotonic)."""
    form = {"grant_type": "client_credentials", "scope": "read"}
    basic = {"Authorization": "Basic " + base64.b64encode(b"svc:svc-secret").decode()}
    async with aiohttp.ClientSession(headers=basic) as session:

        async def client() -> None:
            while time.monotonic() < until:
                async with session.post(url + "/token", data=form) as answer:
                    await answer.read()
                    counts[0 if answer.status == 200 else 1] += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--ttl", type=int, default=5, help="token lifetime (s)")
    parser.add_argument("--horizon", type=float, default=10)
    parser.add_argument("--no-horizon", action="store_true")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "audit.jsonl")
        command = [
            sys.executable,
            "-m",
            "jitchaos",
            "proxy",
            "--upstream",
            "embedded",
            "--client",
            "svc:svc-secret:read",
            "--ttl",
            str(args.ttl),
            "--listen",
            f"127.0.0.1:{port}",
            "--audit",
            log,
        ]
        if not args.no_horizon:
            command += ["--horizon", str(args.horizon)]
        proxy = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert proxy.stdout is not None
            for line in proxy.stdout:
                if line.startswith("jitchaos proxy: schedule"):
                    break
            url = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            end = started + args.minutes * 60
            counts = [0, 0]
            samples: list[tuple[float, int, int]] = []
            print(f"{'s':>6} {'tokens':>9} {'RSS MiB':>8}", flush=True)

            async def run() -> None:
                task = asyncio.create_task(load(url, end, counts, args.concurrency))
                while time.monotonic() < end:
                    await asyncio.sleep(args.every)
                    at = time.monotonic() - started
                    samples.append((at, counts[0], rss(proxy.pid)))
                    print(
                        f"{at:>6.0f} {counts[0]:>9} {samples[-1][2] / _KIB**2:>8.1f}", flush=True
                    )
                await task

            asyncio.run(run())
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(timeout=30)
            if proxy.stdout is not None:
                proxy.stdout.close()
        log_mib = os.path.getsize(log) / _KIB**2
    minute = next((s for s in samples if s[0] >= 60), samples[0])
    last = samples[-1]
    growth = last[2] / minute[2] - 1
    per_token = (last[2] - minute[2]) / max(1, last[1] - minute[1])
    seconds = last[0]
    print(
        f"\n{last[1]} tokens in {seconds:.0f} s ({last[1] / seconds:.0f}/s), {counts[1]} refused; "
        f"audit log {log_mib:.0f} MiB"
    )
    print(
        f"RSS after the first minute {minute[2] / _KIB**2:.1f} MiB, at the end "
        f"{last[2] / _KIB**2:.1f} MiB: {growth:+.1%} ({per_token:.0f} bytes per token since)"
    )
    if args.no_horizon:
        return 0
    met = growth <= 0.10
    print(f"goal: within 10% of the level after the first minute: {'met' if met else 'missed'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
