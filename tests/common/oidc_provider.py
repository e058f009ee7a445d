"""A real, certified OpenID provider this project did not write: panva's node-oidc-provider
(tests/interop/node/oidc_provider.mjs, installed by ``make test`` from the lock file), started
on 127.0.0.1 for a test and stopped after it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"
RESOURCE = "https://api.example"


@contextmanager
def node_oidc_provider(
    *,
    format: Literal["jwt", "opaque"],
    ttl: int,
    clients: Mapping[str, tuple[str, str]],
    resources: Mapping[str, str] | None = None,
    registration: bool = False,
    scopes: str = "",
) -> Iterator[str]:
    """Start the provider issuing ``format`` access tokens of ``ttl`` seconds to ``clients``
    (id -> (secret, scopes)) for ``resources`` (URI -> scopes; default: :data:`RESOURCE`
    with every client's scopes and ``scopes``), open to dynamic client registration (RFC 7591)
    with ``registration``; yields its issuer URL."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH (make test needs node and npm)"
    assert (NODE_DIR / "node_modules").is_dir(), f"run make test: {NODE_DIR}/node_modules"
    named = {s for _, given in clients.values() for s in given.split()} | set(scopes.split())
    every = " ".join(sorted(named))
    served = dict(resources) if resources is not None else {RESOURCE: every}
    config = {
        "port": 0,
        "format": format,
        "ttl": ttl,
        "clients": [
            {"client_id": client, "client_secret": secret, "scope": scopes}
            for client, (secret, scopes) in clients.items()
        ],
        "resources": served,
        "defaultResource": next(iter(served)),
        "registration": registration,
    }
    process = subprocess.Popen(
        [node, "oidc_provider.mjs", json.dumps(config)],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its warnings about the dev adapter and Node's version
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "node-oidc-provider did not start"
        yield str(json.loads(line)["issuer"])
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
