"""The scenario catalogue: public API only, and each scenario finds the bug of its flow."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from jitchaos import AuthChaosMachine, ClientChaosMachine, InvalidArgument, Policy
from jitchaos._run import load_scenario, run_scenario
from jitchaos.known_bugs import (
    introspection_cache,
    jwks_cache,
    jwks_wiped,
    permission_cache,
    stateless_jwt,
)
from tests.common.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "strategies").glob("[!_]*.py"))
ROUTES = {"GET /read": {"read"}, "POST /write": {"write"}}


def test_the_catalogue_has_the_flows_the_issue_names() -> None:
    assert {p.stem for p in SCENARIOS} >= {
        "client_credentials_rotation",
        "refresh_rotation",
        "jwks_rotation",
        "role_narrowing",
        "outage_during_refresh",
    }


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_import_only_public_names(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == "__future__":
                continue
            assert not any(part.startswith("_") for part in module.split(".")), module
            assert all(not alias.name.startswith("_") for alias in node.names), module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not any(p.startswith("_") for p in alias.name.split(".")), alias.name
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert not node.attr.startswith("_") or node.value.id == "self", node.attr
    scenario = load_scenario(path)
    assert issubclass(scenario, AuthChaosMachine | ClientChaosMachine)
    assert ast.get_docstring(tree), "say which flow it is and what it finds"


CASES = [
    ("client_credentials_rotation", stateless_jwt.make_app),
    ("refresh_rotation", introspection_cache.make_app),
    ("jwks_rotation", jwks_cache.make_app),  # never refetched: still found under 600 s
    ("jwks_rotation", jwks_wiped.make_app),  # wiped by a failed refresh
    ("role_narrowing", permission_cache.make_app),
    ("outage_during_refresh", jwks_wiped.make_app),
]


# A twin that validates JWTs locally honours a token until its exp (300 s) whatever the IdP
# revoked: under the scenario's own 30 s policy, a refresh-token reuse that ends the grant
# makes it fail (a longer run found it). Judged by a policy as long as the tokens live.
LOCAL_JWT = {jwks_wiped.make_app: Policy(staleness=300)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "factory"), CASES, ids=[f"{c[0]}-{c[1].__module__.split('.')[-1]}" for c in CASES]
)
def test_each_scenario_finds_its_bug_and_not_in_the_twin(
    name: str, factory: Callable[..., web.Application]
) -> None:
    scenario = load_scenario(ROOT / "strategies" / f"{name}.py")
    found = run_scenario(
        scenario,
        service=factory,
        routes=ROUTES,
        examples=300,
    )
    assert found.failure is not None, found.format()
    assert "state." in found.failure
    # Honest counts (issue #18): shrinking is not counted as examples generated.
    assert found.to_first_failure is not None
    # --examples bounds the examples that pass; failing ones come on top of them.
    assert 1 <= found.to_first_failure <= found.examples
    assert found.shrinking > 0
    assert f"at example {found.to_first_failure} of {found.examples} generated" in found.format()
    clean = run_scenario(
        scenario,
        service=functools.partial(factory, fixed=True),
        routes=ROUTES,
        policy=LOCAL_JWT.get(factory),
        examples=100,
    )
    assert clean.failure is None, clean.format()
    assert clean.examples == 100  # --examples N means N examples generated
    assert (clean.shrinking, clean.to_first_failure) == (0, None)
    assert f"no violation in {clean.examples} examples" in clean.format()


@pytest.fixture
def service_process() -> object:
    """Serve a known-bug service in its own process, configured with a fixed IdP URL."""
    started: list[subprocess.Popen[str]] = []

    def start(name: str, idp_port: int, port: int, *fixed: str) -> str:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jitchaos.known_bugs",
                name,
                "--idp",
                f"http://127.0.0.1:{idp_port}",
                "--port",
                str(port),
                *fixed,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_jitchaos_run_against_a_service_in_another_process(
    service_process: object, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"staleness": 0}')
    for fixed, status, expected in (
        ((), 1, "narrowed-scope-honoured"),
        (
            ("--fixed",),
            0,
            "no violation in",
        ),
    ):
        idp_port = _free_port()
        url = service_process("permission_cache", idp_port, _free_port(), *fixed)  # type: ignore[operator]
        result = run_cli(
            "run",
            str(ROOT / "strategies" / "role_narrowing.py"),
            "--service",
            url,
            "--route",
            "GET /read=read",
            "--route",
            "POST /write=write",
            "--policy",
            str(policy),
            "--listen",
            f"127.0.0.1:{idp_port}",
            "--examples",
            "60",
            "--shrink-budget",
            "10",
        )
        assert result.returncode == status, result.stdout + result.stderr
        assert expected in result.stdout or "scope" in result.stdout, result.stdout
        assert "fault kind" in result.stdout  # the run report


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "is not a Python file"),
        (["README.md"], "is not a Python file"),
        (["strategies/__init__.py"], "defines no Scenario class"),
        (["strategies/role_narrowing.py", "--route", "read"], "must look like"),
        (["strategies/role_narrowing.py", "--policy", str(ROOT / "README.md")], "is not JSON"),
        (["strategies/role_narrowing.py", "--policy", "missing.json"], "policy file"),
        (["strategies/role_narrowing.py", "--listen", "nowhere"], "listen"),
        (["strategies/role_narrowing.py", "--control-listen", "nowhere"], "--control-listen"),
        (["strategies/role_narrowing.py", "--service-listen", "h:99999"], "--service-listen"),
    ],
)
def test_bad_run_arguments_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    first, *rest = args
    path = first if first == "missing.py" else str(ROOT / first)
    result = run_cli("run", path, *rest, "--service", "http://127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_listener_is_named() -> None:
    """The service itself holds the port the proxy is told to front it on."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run_cli(
            "run",
            str(ROOT / "strategies" / "role_narrowing.py"),
            "--service",
            f"http://127.0.0.1:{port}",
            "--route",
            "GET /read=read",
            "--listen",
            "127.0.0.1:0",
            "--service-listen",
            f"127.0.0.1:{port}",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot listen:" in result.stderr, result.stderr
    assert str(port) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_unreachable_service_is_named(tmp_path: Path) -> None:
    result = run_cli(
        "run", str(ROOT / "strategies" / "role_narrowing.py"), "--service", "http://127.0.0.1:9"
    )
    assert result.returncode == 2
    assert "does not answer" in result.stderr


def test_a_policy_file_overrides_only_the_fields_it_names(tmp_path: Path) -> None:
    # {"staleness": 300} over client_credentials_rotation kept its key_staleness=600: a file
    # that reset it to 0 brought back the false alarm the scenario's policy exists to avoid.
    from jitchaos._run import load_policy

    path = tmp_path / "policy.json"
    path.write_text('{"staleness": 300}')
    scenario = load_scenario(ROOT / "strategies" / "client_credentials_rotation.py")
    assert load_policy(path, base=scenario.policy) == Policy(staleness=300, key_staleness=600)
    assert load_policy(path) == Policy(staleness=300)
    path.write_text('{"staleness": -1}')
    with pytest.raises(InvalidArgument, match="policy file"):
        load_policy(path, base=scenario.policy)
