from __future__ import annotations

import gc
import io
import json
import signal
import weakref
from pathlib import Path

import pytest
import requests

from jitchaos._cli._serve import freeze_survivors
from tests.common.cli import run_cli, serving_idp

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["idp"], "give at least one --client"),
        (["idp", "--client", "svc"], "is not ID:SECRET:SCOPES"),
        (["idp", "--client", 'svc:s:bad"scope'], "scope-token"),
        (["idp", "--client", "svc:s:read", "--client", "svc:t:read"], "configured twice"),
        (["idp", "--client", "svc:s:read", "--user", "alice"], "is not NAME:SCOPES"),
        (["idp", "--client", "svc:s:read", "--ttl", "0"], "must be at least 1"),
        (["idp", "--client", "svc:s:read", "--ttl", "soon"], "not a whole number"),
        (["idp", "--client", "svc:s:read", "--ttl", "7200", "--max-ttl", "60"], "exceeds max_ttl"),
        (["idp", "--client", "svc:s:read", "--port", "70000"], "not a port number"),
        (["idp", "--client", "svc:s:read", "--algorithm", "HS256"], "invalid choice"),
        (
            ["idp", "--client", "svc:s:read", "--audit", "/nonexistent/dir/audit.jsonl"],
            "cannot open audit log",
        ),
        (["nonsense"], "invalid choice"),
        ([], "required"),
        (["audit"], "required"),
        (["audit", "/nonexistent.jsonl"], "does not exist"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert lines[0].startswith("jitchaos")
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_a_one_line_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("idp", "--client", "svc:s:read", "--port", str(port))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"jitchaos idp: error: cannot listen on 127.0.0.1:{port}: ")
    assert line.endswith("address already in use")


def test_idp_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with serving_idp(
        "--client",
        "svc:s3cret:read,write",
        "--user",
        "alice:read",
        "--client",
        "web::openid,read",
        "--ttl",
        "120",
        "--audit",
        str(audit),
    ) as (process, issuer):
        assert issuer.startswith("http://127.0.0.1:")
        assert process.stdout is not None
        discovery = process.stdout.readline().split("discovery ", 1)[1].strip()
        metadata = requests.get(discovery, timeout=10).json()
        assert metadata["issuer"] == issuer
        token = requests.post(
            metadata["token_endpoint"],
            auth=("svc", "s3cret"),
            timeout=10,
            data={"grant_type": "client_credentials", "scope": "read"},
        ).json()
        assert token["expires_in"] == 120
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert "stopped" in process.stdout.read()
    assert len(audit.read_text().splitlines()) == 1


def test_idp_stops_on_ctrl_c() -> None:
    with serving_idp("--client", "svc:s:read") as (process, _issuer):
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


def test_audit_command(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with serving_idp("--client", "svc:s3cret:read", "--audit", str(log)) as (process, issuer):
        token = requests.post(
            f"{issuer}/token",
            auth=("svc", "s3cret"),
            timeout=10,
            data={"grant_type": "client_credentials"},
        ).json()["access_token"]
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    found = run_cli("audit", str(log))
    assert found.returncode == 1
    assert "1 grants still open" in found.stdout
    assert token not in found.stdout
    as_json = json.loads(run_cli("audit", str(log), "--json").stdout)
    assert as_json["open_grants"][0]["principal"] == "client:svc"
    closed = run_cli("audit", str(log), "--at", "99999999999")
    assert closed.returncode == 0
    assert "every grant was closed" in closed.stdout
    log.write_bytes(b"\x00\xff")
    corrupt = run_cli("audit", str(log))
    assert corrupt.returncode == 2
    assert "not UTF-8" in corrupt.stderr


def test_servers_freeze_what_survives_each_full_collection() -> None:
    """A proxy in front of staging keeps a growing ledger; full collections must not walk it
    again and again (their pauses grew to 300 ms at 90k tokens), nor keep garbage."""

    class Node:
        def __init__(self) -> None:
            self.other: Node = self

    kept = [Node() for _ in range(1000)]  # state the server keeps
    dropped = Node()  # a garbage cycle: must still be collected
    gone = weakref.ref(dropped)
    del dropped
    uninstall = freeze_survivors()
    try:
        gc.collect()
        assert gone() is None
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(node) in tracked for node in kept)  # frozen: no longer walked
        assert gc.get_freeze_count() >= len(kept)
        gc.collect(1)  # a young collection freezes nothing
        fresh = Node()
        gc.collect(1)
        assert id(fresh) in {id(o) for o in gc.get_objects()}
    finally:
        uninstall()
        gc.unfreeze()


def test_version_and_unknown_options_are_named() -> None:
    from tests.common.cli import run_cli

    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("jitchaos ")
    for args in (["proxy", "--bogus"], ["proxy", "--upstream", "embedded", "--bogus=3"]):
        result = run_cli(*args)
        assert result.returncode == 2
        assert result.stderr.strip() == "jitchaos proxy: error: unrecognized arguments: --bogus"
    # A negative number is a value, and an abbreviation of a real option is that option.
    result = run_cli("audit", "missing.jsonl", "--at", "-5")
    assert "unrecognized" not in result.stderr


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_live_on_a_terminal_and_quiet_in_a_log() -> None:
    from jitchaos._cli._args import progress_line

    terminal = _Stream(tty=True)
    show = progress_line(stream=terminal)
    show(1, 3, 0, 0.4)
    show(2, 7, 1, 0.9)
    assert terminal.getvalue().count("\r") == 2
    assert "2 examples run (shrinking included), 7 faults, 1 violation kind found, 1s" in (
        terminal.getvalue()
    )
    log = _Stream(tty=False)
    show = progress_line(stream=log, heartbeat=60)
    for n in range(1, 200):
        show(n, n * 2, 0, n * 0.25)  # a 50 s run: quiet
    assert log.getvalue() == ""
    show(200, 400, 2, 61.0)  # a long run: one heartbeat a minute
    show(201, 402, 2, 62.0)
    assert log.getvalue().splitlines() == [
        "200 examples run (shrinking included), 400 faults, 2 violation kinds found, 61s"
    ]
