"""Clients in their own processes (#17 point 5): ``jitchaos run strategies/client_recovery.py
--service URL`` drives a client app running as ``python -m jitchaos.known_bugs NAME``, its IdP the
proxy's IdP side and its API the proxy's downstream listener. The machine observes and judges what
the client presents; it never moves the client's clock (the wall clock), and waits for real."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.common.cli import run_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = str(ROOT / "strategies" / "client_recovery.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def client_process(name: str, idp: int, api: int, *, fixed: bool) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "jitchaos.known_bugs",
        name,
        "--idp",
        f"http://127.0.0.1:{idp}",
        "--downstream",
        f"http://127.0.0.1:{api}",
        "--port",
        str(port),
    ] + (["--fixed"] if fixed else [])
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def run_against(name: str, *, fixed: bool, examples: int) -> tuple[int, str]:
    idp, api = free_port(), free_port()
    with client_process(name, idp, api, fixed=fixed) as url:
        result = run_cli(
            "run",
            SCENARIO,
            "--service",
            url,
            "--listen",
            f"127.0.0.1:{idp}",
            "--service-listen",
            f"127.0.0.1:{api}",
            "--examples",
            str(examples),
            "--max-wait",
            "3",
            timeout=600,
        )
    return result.returncode, result.stdout + result.stderr


def test_a_client_that_renews_only_on_its_timer_is_found_in_its_own_process() -> None:
    status, output = run_against("refresh_on_timer", fixed=False, examples=60)
    assert status == 1, output
    assert "[no-recovery-after-revoke]" in output, output


def test_a_client_that_renews_after_every_401_is_never_reported() -> None:
    # The suspected false alarm of the issue: outages of the token endpoint, revocations and
    # early expiry, bursts; a client that fetches a new token after a 401 recovers each time.
    status, output = run_against("refresh_on_timer", fixed=True, examples=60)
    assert status == 0, output
    assert "no violation in 60 examples" in output, output
