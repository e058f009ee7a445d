"""How much a proxy between services and their IdP costs, measured on loopback.

Configurations, interleaved round by round (each proxy started fresh per round, so every
round sees distinct tokens): the upstream IdP directly (the limit), a bare aiohttp pass-through
(the baseline any aiohttp proxy starts from), mitmproxy in reverse mode with a small re-signing
addon (what a user would script today), jitchaos with faults off, and jitchaos re-signing every
token response under a narrowing fault; and the re-signing budget, the pass-through verifying
the upstream's token and making one RS256 signature per token response (what re-signing must
do at least: a proxy never re-mints a token it has not verified). The load generator runs in
its own process; proxy CPU is read from /proc. Reported: medians of requests/s, p50/p99
latency and proxy CPU per request, and ratios against the baseline and against mitmproxy
measured in the same run.

Usage: python bench/proxy_overhead.py [--rounds N] [--duration S] [--concurrency C]
                                      [--mitmdump PATH]     (see `make bench`)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early: {process.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start(
    command: list[str], port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wait_port(port, process)
    return process


def load(url: str, duration: float, concurrency: int) -> dict[str, float]:
    out = subprocess.run(
        [PY, "-m", "bench._load", url, str(duration), str(concurrency)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--pool", type=int, default=40000, help="distinct upstream tokens (> requests per run)"
    )
    parser.add_argument("--mitmdump", default=shutil.which("mitmdump"))
    args = parser.parse_args()

    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    print(f"minting {args.pool} upstream tokens...", file=sys.stderr)
    up = subprocess.Popen(
        [PY, "-m", "bench._upstream", str(up_port), str(args.pool)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert up.stdout is not None
    if up.stdout.readline().strip() != "ready":
        raise RuntimeError("upstream did not start")
    schedule = Path(tempfile.mkdtemp()) / "narrow.json"
    entries = [
        {
            "trigger": {"type": "on_request", "endpoint": "token", "n": n},
            "fault": {"kind": "narrow", "scopes": ["read"]},
        }
        for n in range(1, args.pool + 1)
    ]
    schedule.write_text(json.dumps(entries))

    def jitchaos(*extra: str) -> Any:
        return lambda port: (
            [
                PY,
                "-m",
                "jitchaos",
                "proxy",
                "--upstream",
                upstream,
                "--listen",
                f"127.0.0.1:{port}",
                *extra,
            ],
            None,
        )

    configs: dict[str, Any] = {
        "direct (limit)": None,
        "bare aiohttp pass-through": lambda port: (
            [PY, "-m", "bench._passthrough", str(port), upstream],
            None,
        ),
        "pass-through + upstream check + one RS256 signature (budget)": lambda port: (
            [PY, "-m", "bench._passthrough", str(port), upstream, "--sign"],
            None,
        ),
        "jitchaos, faults off": jitchaos(),
        "jitchaos, narrowing + re-signing": jitchaos("--resign", "--schedule", str(schedule)),
    }
    if args.mitmdump:
        configs["mitmproxy + re-signing addon"] = lambda port: (
            [
                args.mitmdump,
                "-q",
                "--mode",
                f"reverse:{upstream}",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(port),
                "-s",
                str(ROOT / "bench" / "_mitm_resign.py"),
            ],
            {"BENCH_UPSTREAM": upstream},
        )
    else:
        print("mitmdump not found: skipping mitmproxy (make bench installs it)", file=sys.stderr)

    results: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    names = list(configs)
    try:
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                factory = configs[name]
                if factory is None:
                    outcome = load(f"{upstream}/token", args.duration, args.concurrency)
                    outcome["cpu_us"] = float("nan")
                else:
                    port = free_port()
                    command, env = factory(port)
                    process = start(command, port, env)
                    try:
                        before = cpu_seconds(process.pid)
                        outcome = load(
                            f"http://127.0.0.1:{port}/token", args.duration, args.concurrency
                        )
                        spent = cpu_seconds(process.pid) - before
                    finally:
                        process.terminate()
                        process.wait(20)
                    total = outcome["requests"] + outcome["errors"]
                    outcome["cpu_us"] = 1e6 * spent / max(1, total)
                results[name].append(outcome)
                print(f"round {round_ + 1} {name}: {outcome}", file=sys.stderr)
    finally:
        up.terminate()
        up.wait(20)

    def median(name: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name])

    base = "bare aiohttp pass-through"
    mitm = "mitmproxy + re-signing addon"
    print(
        f"\n{args.rounds} rounds x {args.duration:g}s, concurrency {args.concurrency}, "
        f"{os.cpu_count()} cores; medians\n"
    )
    print(
        "| configuration | req/s | p50 ms | p99 ms | proxy CPU µs/req | vs pass-through "
        "| vs mitmproxy |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in configs:
        rps = median(name, "rps")
        errors = sum(r["errors"] for r in results[name])
        cpu = median(name, "cpu_us")
        vs_mitm = f"{rps / median(mitm, 'rps'):.2f}x" if mitm in results else "-"
        print(
            f"| {name}{f' ({errors} errors)' if errors else ''} | {rps:.0f} | "
            f"{median(name, 'p50_ms'):.1f} | {median(name, 'p99_ms'):.1f} | "
            f"{'-' if cpu != cpu else f'{cpu:.0f}'} | "
            f"{rps / median(base, 'rps'):.2f}x | {vs_mitm} |"
        )
    signature = one_signature_us()
    off, resigning = "jitchaos, faults off", "jitchaos, narrowing + re-signing"
    budget = median("pass-through + upstream check + one RS256 signature (budget)", "cpu_us")
    print(
        f"\none RS256 signature (2048-bit key), idle, in this process: {signature:.0f} µs; "
        f"the budget (pass-through + upstream check + one signature) under load: {budget:.0f} µs "
        f"(pass-through + idle signature: {median(base, 'cpu_us') + signature:.0f} µs)"
    )
    # The machine's speed drifts between rounds; within a round the configurations run
    # back to back, so the per-round difference is the steadier estimate of the gap.
    paired = sorted(
        r["cpu_us"] - b["cpu_us"]
        for r, b in zip(
            results[resigning],
            results["pass-through + upstream check + one RS256 signature (budget)"],
            strict=True,
        )
    )
    print(
        f"re-signing minus budget, paired by round: median {statistics.median(paired):+.0f} µs "
        f"(rounds: {', '.join(f'{d:+.0f}' for d in paired)})"
    )
    print("targets:")
    checks = [
        ("faults off >= pass-through req/s", median(off, "rps") >= median(base, "rps")),
        (
            "re-signing CPU/token <= pass-through + upstream check + one signature "
            f"({budget:.0f} µs)",
            median(resigning, "cpu_us") <= budget,
        ),
    ]
    if mitm in results:
        checks.append(
            (
                "re-signing >= 2x mitmproxy req/s",
                median(resigning, "rps") >= 2 * median(mitm, "rps"),
            )
        )
    for what, met in checks:
        print(f"  {'met    ' if met else 'NOT MET'}  {what}")
    return 0


def one_signature_us() -> float:
    """What one RS256 signature costs here, idle: PyJWT's ``jwt.encode``, as the budget
    configuration signs (the proxy itself signs through ``sign_compact``, a few us cheaper)."""
    import timeit

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "svc", "scope": "read", "iat": 0, "exp": 1}
    runs = 300
    seconds = timeit.timeit(lambda: jwt.encode(claims, key, algorithm="RS256"), number=runs)
    return 1e6 * seconds / runs


if __name__ == "__main__":
    sys.exit(main())
