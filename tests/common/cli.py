"""Run the jitchaos command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jitchaos", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def serving_idp(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``jitchaos idp ARGS`` in a subprocess; yields it and its issuer once it is listening."""
    process = subprocess.Popen(
        [sys.executable, "-m", "jitchaos", "idp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if "issuer" not in first:
            process.kill()
            raise AssertionError(f"idp did not start: {first!r} {process.communicate()}")
        yield process, first.split("issuer ", 1)[1].strip()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@contextmanager
def serving_proxy(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``jitchaos proxy ARGS`` in a subprocess; yields it and what it printed, by first word
    after the prefix (``idp``, ``control``, ``secret``, ``service NAME``...)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "jitchaos", "proxy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        assert process.stdout is not None
        said: dict[str, str] = {}
        while True:
            line = process.stdout.readline()
            if not line.startswith("jitchaos proxy: "):
                process.kill()
                raise AssertionError(f"proxy did not start: {line!r} {process.communicate()}")
            what, _, rest = line.removeprefix("jitchaos proxy: ").strip().partition(" ")
            if what == "service":
                name, _, rest = rest.partition(" ")
                what = f"service {name}"
            said[what] = rest
            if what == "schedule":
                break
        yield process, said
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
