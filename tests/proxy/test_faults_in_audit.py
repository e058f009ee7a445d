"""Faults in the audit (#20 point 4): every fault the proxy applies, or could not, is a line
of its audit log, so ``jitchaos audit`` on the file alone tells the whole story of a run."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from jitchaos import ManualClock, fingerprint
from jitchaos._audit import read_audit
from jitchaos.faults import Outage, Revoke
from jitchaos.proxy import ChaosProxy
from tests.common.cli import run_cli
from tests.common.idp import client_credentials, standard_config


def test_every_fault_is_in_the_audit_log(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    clock = ManualClock()
    with ChaosProxy(standard_config(), clock=clock, audit=log).in_thread() as proxy:
        token = client_credentials(proxy, "read")["access_token"]
        proxy.apply(Revoke(target=f"token:{fingerprint(token)}"))  # applied
        proxy.apply(Revoke(target="token:0000000000000000"))  # nothing to revoke
        proxy.apply(Outage(endpoint="token", duration=30.0))  # a lasting effect
        refused = requests.post(
            f"{proxy.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret"),
            timeout=10,
        )
        assert refused.status_code == 503
        in_memory = [fault.to_json() for fault in proxy.history.faults]
    assert len(in_memory) == 3
    report = read_audit(log)
    assert [fault.to_json() for fault in report.faults] == in_memory
    assert not report.malformed
    assert [f.applied for f in report.faults][:3] == [True, False, True]
    assert token not in log.read_text()  # fingerprints only

    shown = run_cli("audit", str(log))
    assert f"{len(in_memory)} faults (" in shown.stdout, shown.stdout
    assert "revoke applied (now)" in shown.stdout
    assert "revoke not applied (now)" in shown.stdout
    assert "outage applied (now)" in shown.stdout
    document = json.loads(run_cli("audit", str(log), "--json").stdout)
    assert [fault["fault"]["kind"] for fault in document["faults"]][:3] == [
        "revoke",
        "revoke",
        "outage",
    ]


def test_a_bad_fault_line_is_a_malformed_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with ChaosProxy(standard_config(), audit=log).in_thread() as proxy:
        client_credentials(proxy, "read")
    with log.open("a") as file:
        file.write(json.dumps({"type": "fault", "seq": "one"}) + "\n")
    report = read_audit(log)
    assert report.faults == ()
    assert len(report.malformed) == 1
    assert "bad fault record" in report.malformed[0].reason
