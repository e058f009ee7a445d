"""The benchmarks still run end to end (tiny and without mitmproxy): a smoke test that asserts
what it prints, never how fast anything is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``bench/SCRIPT ARGS`` from the repository; it must succeed."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_proxy_overhead_bench_runs() -> None:
    result = bench(
        "proxy_overhead.py",
        "--rounds",
        "1",
        "--duration",
        "0.3",
        "--concurrency",
        "2",
        "--pool",
        "5000",
        "--mitmdump",
        "",
    )
    for row in (
        "bare aiohttp pass-through",
        "pass-through + upstream check + one RS256 signature (budget)",
        "jitchaos, faults off",
        "jitchaos, narrowing",
    ):
        assert f"| {row}" in result.stdout
    assert " errors)" not in result.stdout  # every request got a 200
    assert "targets:" in result.stdout
    assert "re-signing minus budget, paired by round: median " in result.stdout
    assert "skipping mitmproxy" in result.stderr


@pytest.mark.slow
def test_strategies_bench_runs() -> None:
    result = bench("strategies.py", "--examples", "20", "--rounds", "1")
    assert "| tokens() RS256 |" in result.stdout
    assert "| hostile_tokens() |" in result.stdout
    assert "target >= 500 tokens/s" in result.stdout


@pytest.mark.slow
def test_time_to_bug_bench_runs() -> None:
    result = bench("time_to_bug.py", "--only", "jwks_wiped", "--seeds", "1", "--budget", "30")
    assert "| jwks_wiped |" in result.stdout
    assert "every bug found in every seed within" in result.stdout


@pytest.mark.slow
def test_false_alarm_soak_runs_clean() -> None:
    result = bench("false_alarms.py", "--only", "jwks_wiped", "--seeds", "1", "--examples", "60")
    assert "jwks_wiped seed 0: clean" in result.stdout
    assert "0 false alarm(s)" in result.stdout


def test_fuzz_bench_runs() -> None:
    result = bench("fuzz.py", "--requests", "30")
    assert "goal: no 5xx and no unanswered request on any listener: met" in result.stdout
    for listener in ("IdP side", "service side", "control API"):
        assert listener in result.stdout


def test_memory_bench_runs() -> None:
    result = bench("memory.py", "--minutes", "0.05", "--every", "1", "--no-horizon")
    assert "RSS after the first minute" in result.stdout
    assert "bytes per token since" in result.stdout


@pytest.mark.slow
def test_soak_bench_runs() -> None:
    result = bench(
        "soak.py",
        "--clients",
        "2",
        "--seconds",
        "2",
        "--fuzz",
        "20",
        "--seeds",
        "3",
        "--memory-minutes",
        "0",
    )
    for figure in (
        "proxy 5xx",
        "ledger events lost",
        "fuzz control API",
        "framing cases",
        "discovery naming another host",
        "raw secrets",
        "seeded schedules",
    ):
        assert figure in result.stdout
    assert "| NO |" not in result.stdout
