from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import requests

from jitchaos import (
    AuditError,
    AuditLog,
    AuditLogError,
    InvalidArgument,
    IssuedToken,
    Ledger,
    ManualClock,
    Principal,
    TokenKind,
    fingerprint,
    read_audit,
)
from jitchaos._audit import decode_event, encode_event
from jitchaos.idp import EmbeddedIdP
from tests.common.cli import serving_idp
from tests.common.idp import client_credentials, refresh, standard_config, user_tokens


def drive(idp: EmbeddedIdP, clock: ManualClock) -> list[str]:
    """Every kind of ledger change through the IdP; returns every raw credential handed out."""
    raw: list[str] = []
    service = client_credentials(idp, "read write")
    user = user_tokens(idp)
    rotated = refresh(idp, user["refresh_token"]).json()
    raw += [
        service["access_token"],
        user["access_token"],
        user["refresh_token"],
        user["id_token"],
        rotated["access_token"],
        rotated["refresh_token"],
    ]
    idp.ledger.narrow(idp.ledger.grants[-1].grant_id, {"read"})
    idp.ledger.expire(token=fingerprint(service["access_token"]))
    assert refresh(idp, user["refresh_token"]).status_code == 400  # reuse: family revoked
    other = client_credentials(idp, "read")
    raw.append(other["access_token"])
    requests.post(
        f"{idp.url}/revoke",
        data={"token": other["access_token"]},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    clock.advance(10)
    return raw


def test_one_event_per_change_in_order_and_no_raw_token(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "audit.jsonl"
    with EmbeddedIdP(standard_config(), clock=clock, audit=path).in_thread() as idp:
        raw = drive(idp, clock)
        events = idp.ledger.events
    lines = path.read_text().splitlines()
    assert [decode_event(json.loads(line)) for line in lines] == list(events)
    assert [type(e).__name__ for e in events] == [
        "Granted",
        "Granted",
        "Refreshed",
        "Narrowed",
        "Expired",
        "Revoked",
        "Granted",
        "Revoked",
    ]
    content = path.read_text()
    for credential in raw:
        for piece in (credential, *credential.split(".")):  # nor any JWT segment
            assert piece not in content
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_encoding_round_trips() -> None:
    ledger = Ledger(ManualClock(start=5))
    tokens = [
        IssuedToken(
            fingerprint="a" * 16,
            kind=TokenKind.ACCESS,
            issued_at=5,
            expires_at=65,
            scopes={"read"},
            kid="k",
        )
    ]
    event = ledger.grant(
        principal=Principal.client("svc"), client_id="svc", scopes={"read"}, tokens=tokens
    )
    assert decode_event(json.loads(json.dumps(encode_event(event)))) == event


def test_fail_closed_when_the_sink_cannot_be_written(clock: ManualClock) -> None:
    ledger = Ledger(clock, audit=AuditLog("/dev/full"))
    token = IssuedToken(
        fingerprint="b" * 16,
        kind=TokenKind.ACCESS,
        issued_at=clock.now(),
        expires_at=clock.now() + 60,
        scopes={"read"},
    )
    with pytest.raises(AuditError, match="cannot write audit log /dev/full"):
        ledger.grant(
            principal=Principal.client("svc"), client_id="svc", scopes={"read"}, tokens=[token]
        )
    assert ledger.events == ()
    assert ledger.lookup(token.fingerprint) is None


def test_the_idp_refuses_to_grant_without_audit(clock: ManualClock) -> None:
    with EmbeddedIdP(standard_config(), clock=clock, audit="/dev/full").in_thread() as idp:
        response = requests.post(
            f"{idp.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret"),
            timeout=10,
        )
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert "access_token" not in response.json()
        assert idp.ledger.events == ()


def test_an_unopenable_sink_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"cannot open audit log .*missing"):
        AuditLog(tmp_path / "missing" / "audit.jsonl")


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with serving_idp("--client", "svc:s3cret:read,write", "--audit", str(path)) as (
        process,
        issuer,
    ):
        tokens = []
        for _ in range(5):
            response = requests.post(
                f"{issuer}/token",
                auth=("svc", "s3cret"),
                timeout=10,
                data={"grant_type": "client_credentials"},
            )
            assert response.status_code == 200
            tokens.append(response.json()["access_token"])
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    report = read_audit(path)
    assert len(report.events) == 5
    assert [e.tokens[0].fingerprint for e in report.events] == [  # type: ignore[union-attr]
        fingerprint(t) for t in tokens
    ]
    assert len(report.open_grants) == 5  # nobody revoked them: left open by the kill
    assert not report.malformed
    assert not any(t in path.read_text() for t in tokens)


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_read_audit_reports_open_grants_and_malformed_lines(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "audit.jsonl"
    with EmbeddedIdP(standard_config(), clock=clock, audit=path).in_thread() as idp:
        kept = client_credentials(idp, "read")
        closed = client_credentials(idp, "read")
        requests.post(
            f"{idp.url}/revoke",
            data={"token": closed["access_token"]},
            auth=("svc", "svc-secret"),
            timeout=10,
        )
    with path.open("a") as log:
        log.write("this is not json\n")
        log.write(
            '{"event": "revoked", "seq": 4, "at": 1, "reason": "x", '
            '"fingerprints": ["ffffffffffffffff"], "grant_ids": ["g9"]}\n'
        )
        log.write('{"event": "teleported", "seq": 5}\n')
    report = read_audit(path)
    assert [g.grant_id for g in report.open_grants] == ["g1"]
    assert [(m.line, m.reason.split(" (")[0]) for m in report.malformed] == [
        (4, "not JSON"),
        (5, "token ffffffffffffffff was never issued"),
        (6, "unknown event 'teleported'"),
    ]
    assert not report.ok
    text = report.format()
    assert "g1 client:svc" in text
    assert "line 4: not JSON" in text
    assert kept["access_token"] not in text
    # Later, everything has expired: nothing is open.
    assert read_audit(path, at=clock.now() + 10_000).open_grants == ()


def test_seq_gaps_are_reported(tmp_path: Path) -> None:
    ledger = Ledger(ManualClock(start=5))
    for n in range(3):
        ledger.grant(
            principal=Principal.client("svc"),
            client_id="svc",
            scopes=(),
            tokens=[
                IssuedToken(
                    fingerprint=f"{n:016d}",
                    kind=TokenKind.ACCESS,
                    issued_at=5,
                    expires_at=6,
                    scopes=(),
                )
            ],
        )
    lines = [json.dumps(encode_event(e)) for e in ledger.events]
    report = read_audit(write_lines(tmp_path / "a.jsonl", lines[0], lines[2]))
    assert [m.line for m in report.malformed] == [2]
    assert "seq 3 where 2 was expected" in report.malformed[0].reason


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"hello\nworld\n", "holds no audit event"),
    ],
)
def test_unreadable_logs_are_clear_errors(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    path = tmp_path / "audit.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AuditLogError, match=match):
        read_audit(path)


def test_empty_log_is_clean(tmp_path: Path) -> None:
    report = read_audit(write_lines(tmp_path / "a.jsonl"))
    assert report.ok
    assert report.events == ()


def test_judging_records_round_trip_and_bad_ones_are_named(tmp_path: Path) -> None:
    from jitchaos import Policy
    from jitchaos._audit import Judging

    path = tmp_path / "judged.jsonl"
    judged = Judging("t.py::test", Policy(staleness=5), {"GET /read": frozenset({"read"})})
    with AuditLog(path) as log:
        log.write_judging(Judging(None, Policy()))
        log.write_judging(judged)
        with pytest.raises(InvalidArgument, match="is not a Judging"):
            log.write_judging({"policy": {}})  # type: ignore[arg-type]
    report = read_audit(path)
    assert report.judging == (Judging(None, Policy()), judged)
    assert report.ok
    with path.open("a") as raw:
        raw.write('{"type":"judging","holder":null,"policy":{"staleness":-1},"routes":null}\n')
    with pytest.raises(AuditLogError, match=r"line 3: bad judging record: 'policy': staleness"):
        read_audit(path)  # a log of judging records alone, one of them bad


def test_what_is_not_an_event_or_a_path_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="path=None must be a file path"):
        AuditLog(None)  # type: ignore[arg-type]
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        with pytest.raises(InvalidArgument, match="'x' is not a ledger event"):
            log.write("x")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="'x' is not a Decision"):
            log.write_decision("x")
    assert path.read_text() == ""


def _leases_log(path: Path) -> tuple[str, str]:
    """A broker-shaped log: g1 leased at 1000 and given back at 1100; g2 leased at 1110 and
    taken back by the fixture at 1120; a use of g1's token at 1050 and one at 1130."""
    from jitchaos import AuditLog, IssuedToken, Ledger, Principal, TokenKind
    from jitchaos._history import Decision

    clock = ManualClock(1000)
    log = AuditLog(path)
    ledger = Ledger(clock, audit=log)

    def lease(fp: str) -> str:
        token = IssuedToken(
            fingerprint=fp,
            kind=TokenKind.ACCESS,
            issued_at=clock.now(),
            expires_at=clock.now() + 600,
            scopes=frozenset({"read"}),
            kid="k1",
        )
        granted = ledger.grant(
            principal=Principal.client("ci"), client_id="ci", scopes={"read"}, tokens=[token]
        )
        ledger.lease(granted.grant_id, holder="t", requested_ttl=600, ttl=600)
        return granted.grant_id

    first = lease("a" * 16)
    clock.advance(50)
    log.write_decision(
        Decision(
            seq=1,
            at=clock.now(),
            step=0,
            service="api",
            method="GET",
            path="/read",
            fingerprint="a" * 16,
            status=200,
            holder="t",
        )
    )
    clock.advance(50)
    ledger.give_back(
        first,
        holder="t",
        by_holder=True,
        revoked=False,
        valid_until=1600,
        reason="the IdP does not revoke this token type",
    )
    clock.advance(10)
    second = lease("b" * 16)
    clock.advance(10)
    ledger.give_back(
        second,
        holder="t",
        by_holder=False,
        revoked=True,
        valid_until=1120,
        reason="never returned by t",
    )
    clock.advance(10)
    log.write_decision(
        Decision(
            seq=2,
            at=clock.now(),
            step=0,
            service="api",
            method="GET",
            path="/read",
            fingerprint="a" * 16,
            status=200,
            holder="t",
        )
    )
    log.close()
    return first, second


def test_open_grants_and_findings_as_of_a_moment(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first, second = _leases_log(path)
    assert [g.grant_id for g in read_audit(path).open_grants] == [second]  # never returned
    # At 1050 g1 was still held and g2 did not exist yet.
    assert [g.grant_id for g in read_audit(path, at=1050).open_grants] == [first]
    from tests.common.cli import run_cli

    out = run_cli("audit", str(path))
    assert out.returncode == 1
    assert "[use-after-return] token aaaaaaaaaaaaaaaa" in out.stdout
    assert "500s of exposure" in out.stdout


def test_jitchaos_audit_reads_worker_logs_as_one_json_document(tmp_path: Path) -> None:
    from tests.common.cli import run_cli

    base = tmp_path / "run[1].jsonl"  # glob characters in the name are a name
    for worker in ("gw0", "gw1"):
        _leases_log(tmp_path / f"run[1].{worker}.jsonl")
    out = run_cli("audit", str(base), "--json")
    assert out.returncode == 1, out.stderr
    documents = json.loads(out.stdout)["logs"]
    assert [Path(d["path"]).name for d in documents] == ["run[1].gw0.jsonl", "run[1].gw1.jsonl"]
    assert all(d["notes"] for d in documents)
