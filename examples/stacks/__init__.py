"""Resource servers built on the JWT stacks people use, each run in its own process with the
library's defaults: PyJWT's ``PyJWKClient``, Authlib's ``ResourceProtector`` and Node's jose
(``tests/interop/node/jose_service.mjs``). They serve ``GET /read`` (scope ``read``) and ``POST
/write`` (``write``), check signature, ``iss``, ``aud`` and ``exp``, and no revocation
(stateless JWTs): a 401 for a token they refuse, 503 when they cannot reach the keys. Authlib's
also introspects opaque tokens (``--introspect``).

Each has a known bug that one option turns on, a setting seen in real services: PyJWT's
``--leeway`` (a token honoured past ``exp``), Authlib's introspection ``--cache`` (a revoked or
narrowed token honoured until the answer ages out), jose's ``--permission-cache`` (a subject's
first scopes kept after a role change). Without it, each is the correct twin.

:func:`running` starts one on a free port for an IdP URL and stops it afterwards;
:func:`run_catalogue` runs a catalogue scenario against one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from jitchaos._run import RunOutcome, load_scenario, run_scenario

STACKS = ("pyjwt", "authlib", "jose")
TOKEN_LIFE = 300.0
"""The machines' access-token lifetime: a stateless JWT service honours a token that long."""
NODE_DIR = Path(__file__).parents[2] / "tests" / "interop" / "node"


def free_port() -> int:
    """A port nothing listens on now (the proxy's IdP side takes it next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(stack: str, idp_url: str, *options: str) -> Iterator[str]:
    """Start the ``stack`` service for ``idp_url`` in its own process, with command-line
    ``options`` (``--issuer``, ``--audience``, its bug's option); yields its URL."""
    port = free_port()
    if stack == "jose":
        node = shutil.which("node")
        if node is None or not (NODE_DIR / "node_modules").is_dir():
            raise RuntimeError("the jose service needs node and tests/interop/node/node_modules")
        command = [node, str(NODE_DIR / "jose_service.mjs"), idp_url, str(port), *options]
    elif stack in STACKS:
        module = f"examples.stacks.{stack}_service"
        command = [sys.executable, "-m", module, idp_url, str(port), *options]
    else:
        raise ValueError(f"stack={stack!r} is not one of {STACKS}")
    # An argument list of ours: the interpreter or node, one of our files, its options.
    process = subprocess.Popen(command, cwd=Path(__file__).parents[2])  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()  # noqa: S310
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {stack} service did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_catalogue(
    stack: str, scenario: str, examples: int, *, max_wait: float = 3, **policy: Any
) -> RunOutcome:
    """Run ``strategies/<scenario>.py`` against the ``stack`` service in its own process,
    under the scenario's policy with what a stateless JWT service declares (staleness up to
    the token's life) and any ``policy`` fields given; a wall-clock wait lasts at most
    ``max_wait`` seconds."""
    machine = load_scenario(Path(__file__).parents[2] / "strategies" / f"{scenario}.py")
    declared = attrs.evolve(
        machine.policy, staleness=max(machine.policy.staleness, TOKEN_LIFE), **policy
    )
    port = free_port()
    with running(stack, f"http://127.0.0.1:{port}") as url:
        return run_scenario(
            machine,
            service=url,
            routes={"GET /read": {"read"}, "POST /write": {"write"}},
            policy=declared,
            listen=("127.0.0.1", port),
            examples=examples,
            # The rotations' windows (600 s) are beyond any wait; an outage's edge is not:
            # short waits keep these runs to seconds.
            max_wait=max_wait,
        )
