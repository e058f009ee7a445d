"""The staging world: a real, certified OpenID provider this project did not write
(node-oidc-provider, opaque or JWT access tokens), the known-bug services and their twins each
in its own process, the wall clock. What a user runs: ``jitchaos run --upstream`` and a machine
class with ``upstream`` set."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import pytest

from jitchaos import AuthChaosMachine, Policy
from jitchaos._run import RunOutcome, run_scenario
from jitchaos._worlds import TestClient
from jitchaos.errors import InvalidArgument
from tests.common.cli import run_cli
from tests.common.oidc_provider import RESOURCE, node_oidc_provider

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ROUTES = {"GET /read": frozenset({"read"}), "POST /write": frozenset({"write"})}
RESOURCE_SERVER = ("api", "api-secret-for-the-suite")
CLIENTS = {
    "ci": ("ci-secret-for-the-suite", "read write"),
    RESOURCE_SERVER[0]: (RESOURCE_SERVER[1], ""),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def provider(format: str) -> Iterator[str]:
    # Tokens live 60 s: longer than any wait of these tests (max_wait), as real ones do.
    with node_oidc_provider(
        format=format,  # type: ignore[arg-type]
        ttl=60,
        clients=CLIENTS,
        registration=True,
        scopes="read write",
    ) as issuer:
        yield issuer


@contextmanager
def known_bug_service(
    name: str, idp_port: int, issuer: str, *, fixed: bool = False, audience: str | None = None
) -> Iterator[str]:
    """``python -m jitchaos.known_bugs NAME`` in its own process, its IdP the proxy's IdP side on
    ``idp_port`` (not listening yet: the run starts it), introspecting as the resource
    server's client; yields its URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "jitchaos.known_bugs",
        name,
        "--idp",
        f"http://127.0.0.1:{idp_port}",
        "--port",
        str(port),
        "--issuer",
        issuer,
        "--client",
        ":".join(RESOURCE_SERVER),
    ]
    command += ["--fixed"] if fixed else []
    command += ["--audience", audience] if audience else []
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


def staging_run(
    scenario: type[AuthChaosMachine],
    name: str,
    format: str,
    *,
    examples: int,
    fixed: bool = False,
    clients: Sequence[str] = (),
) -> tuple[RunOutcome, float]:
    with provider(format) as issuer:
        port = free_port()
        audience = RESOURCE if format == "jwt" else None
        with known_bug_service(name, port, issuer, fixed=fixed, audience=audience) as url:
            started = time.monotonic()
            outcome = run_scenario(
                scenario,
                service=url,
                routes=ROUTES,
                listen=("127.0.0.1", port),
                examples=examples,
                upstream=issuer,
                clients=clients,
            )
            return outcome, time.monotonic() - started


class Lifecycle(AuthChaosMachine):
    """Grants, uses, revocations and narrowing at the real IdP, waits on the wall clock."""

    actions = frozenset({"grant", "call", "revoke", "advance"})
    policy = Policy(staleness=5)
    max_wait = 8.0  # the policy's window, not the tokens' 60 s
    shrink_budget = 20.0
    routes: ClassVar = ROUTES


class RoleChanges(AuthChaosMachine):
    """The same principal's next token carries fewer or more scopes (no waiting at all)."""

    actions = frozenset({"grant", "call"})
    policy = Policy(staleness=5)
    routes: ClassVar = ROUTES
    shrink_budget = 20.0


def test_a_stale_permission_cache_is_found_through_a_real_idp() -> None:
    outcome, _ = staging_run(RoleChanges, "permission_cache", "opaque", examples=30)
    assert outcome.failure is not None, outcome.format()
    kinds = {record.violations[0].kind for record in outcome.records}
    # The cache keeps the first token's permission for the principal: a narrower token
    # keeps the wider one, a wider one is refused.
    assert kinds & {"narrowed-scope-honoured", "valid-token-rejected"}, outcome.format()
    assert "cross-principal-leak" not in kinds, outcome.format()
    assert outcome.world == "staging"


def test_its_twin_stays_clean_with_a_client_registered_per_example() -> None:
    outcome, _ = staging_run(RoleChanges, "permission_cache", "opaque", examples=40, fixed=True)
    assert outcome.failure is None, outcome.format()
    assert outcome.examples == 40
    # Not vacuous: tokens were granted and used, and the service's answers were judged.
    assert outcome.report.baseline, outcome.format()


def test_a_revocation_honoured_from_a_long_cache_is_found_on_the_wall_clock() -> None:
    # The service caches introspection five minutes; the IdP revokes the opaque token itself
    # (RFC 7009) and the wait goes straight past the 5 s window.
    outcome, seconds = staging_run(
        Lifecycle,
        "introspection_cache",
        "opaque",
        examples=30,
        clients=["ci:ci-secret-for-the-suite:read,write"],
    )
    assert outcome.failure is not None, outcome.format()
    assert "[revoked-token-accepted]" in outcome.failure, outcome.format()
    assert "by the IdP (RFC 7009)" in outcome.format()
    assert seconds < 240, seconds  # shrinking is bounded on the wall clock


def test_a_jwt_service_without_revocation_checks_is_found_with_the_proxys_revocation() -> None:
    # The provider refuses to revoke JWTs (RFC 7009 unsupported_token_type): the proxy's
    # ledger revokes, and the report says so.
    outcome, _ = staging_run(
        Lifecycle,
        "stateless_jwt",
        "jwt",
        examples=30,
        clients=["ci:ci-secret-for-the-suite:read,write"],
    )
    assert outcome.failure is not None, outcome.format()
    assert "[revoked-token-accepted]" in outcome.failure, outcome.format()
    assert "by the proxy (the IdP refused: HTTP 400 unsupported_token_type" in outcome.format()


def test_an_upstream_that_is_no_openid_provider_is_one_sentence_and_exit_2() -> None:
    with provider("opaque") as issuer:
        port = free_port()
        with known_bug_service("permission_cache", port, issuer) as url:
            result = run_cli(
                "run",
                str(ROOT / "strategies" / "client_credentials_rotation.py"),
                "--service",
                url,
                "--route",
                "GET /read=read",
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                url,  # a resource server, not an IdP
            )
            assert result.returncode == 2, result.stderr
            (line,) = result.stderr.strip().splitlines()
            assert "is not an OpenID provider" in line, line
            refused = run_cli(
                "run",
                str(ROOT / "strategies" / "client_credentials_rotation.py"),
                "--service",
                url,
                "--route",
                "GET /read=read",
                "--listen",
                f"127.0.0.1:{port}",
                "--upstream",
                issuer,
                "--client",
                "ci:not-its-secret",
            )
            assert refused.returncode == 2, refused.stderr
            (line,) = refused.stderr.strip().splitlines()
            assert "the IdP refused client 'ci'" in line, line
            assert "invalid_client" in line, line
            assert "not-its-secret" not in refused.stderr + refused.stdout
            # From the library, nothing half-started is left: the proxy's port is free again
            # (bound as a server binds it, past the closed connections' TIME_WAIT).
            with pytest.raises(InvalidArgument, match="the IdP refused client 'ci'"):
                run_scenario(
                    RoleChanges,
                    service=url,
                    listen=("127.0.0.1", port),
                    upstream=issuer,
                    clients=["ci:not-its-secret"],
                )
            with socket.socket() as again:
                again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                again.bind(("127.0.0.1", port))


def test_a_client_argument_that_is_malformed_names_the_form_and_hides_the_secret() -> None:
    with pytest.raises(InvalidArgument, match=r"'ci:\*\*\*:' must look like 'ID:SECRET'"):
        TestClient.parse("ci:s3cret:")
    assert TestClient.parse("ci:s3cret:read,write") == TestClient(
        "ci", "s3cret", frozenset({"read", "write"})
    )
    assert "s3cret" not in repr(TestClient.parse("ci:s3cret"))
