"""A horizon for long runs (#20 point 1): with ``horizon`` and an audit log, grants closed that
long ago, and decisions and faults that old, leave the proxy's memory and its embedded IdP's;
the audit log keeps them, what stays answers as before, and a forgotten token is denied with a
verdict that says it may have been forgotten."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from jitchaos import ManualClock, Outcome, read_audit
from jitchaos.errors import InvalidArgument
from jitchaos.faults import Revoke
from jitchaos.proxy import ChaosProxy
from tests.common.cli import run_cli
from tests.common.idp import standard_config
from tests.common.service import ResourceService


def _token(proxy: ChaosProxy, scope: str = "read") -> str:
    answer = requests.post(
        proxy.url + "/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_closed_grants_and_old_history_leave_memory_and_stay_in_the_log(tmp_path: Path) -> None:
    clock = ManualClock()
    log = tmp_path / "audit.jsonl"
    with ResourceService("introspect").in_thread() as service:
        proxy = ChaosProxy(
            standard_config(),
            services={"api": service.url},
            clock=clock,
            audit=log,
            horizon=60,
        )
        with proxy.in_thread():
            service.point_at(proxy.url, issuer=proxy.url)
            front = proxy.service_url("api")
            closed, open_ = _token(proxy), _token(proxy)
            for token in (closed, open_):
                use = requests.get(front + "/read", headers={"Authorization": f"Bearer {token}"})
                assert use.status_code == 200
            proxy.apply(Revoke(target="grant:g1"))
            assert proxy.idp is not None
            idp_grants = len(proxy.idp.ledger.grants)
            clock.advance(61)
            # Revoked 61 s ago, but the embedded IdP never heard of the proxy's revocation:
            # until the token's exp only the proxy's record keeps it dead. It stays.
            assert proxy.forget() == 0
            assert proxy.history.entries == ()  # every decision and fault was 61 s old
            refused = requests.get(front + "/read", headers={"Authorization": f"Bearer {closed}"})
            assert refused.status_code == 401
            assert len(proxy.idp.ledger.grants) == idp_grants
            clock.advance(300)  # both tokens expired 61 s ago: both grants closed
            assert proxy.forget() == 2
            assert proxy.ledger.grants == ()
            assert proxy.idp.ledger.grants == ()
            assert proxy.ledger.forgotten == 2
            from jitchaos import fingerprint

            verdict = proxy.ledger.verdict(fingerprint(closed), at=clock.now())
            assert verdict.outcome is Outcome.MUST_DENY
            assert "forgotten" in verdict.reason
            # A forgotten token is as dead to the service as before.
            for token in (closed, open_):
                gone = requests.get(front + "/read", headers={"Authorization": f"Bearer {token}"})
                assert gone.status_code == 401
            assert _token(proxy)  # and the proxy goes on granting
    report = read_audit(log)
    # The log keeps everything: three grants, five decisions, the fault.
    assert {g.grant_id for g in report.ledger.grants} == {"g1", "g2", "g3"}  # type: ignore[union-attr]
    assert [d.status for d in report.decisions] == [200, 200, 401, 401, 401]
    assert [f.fault.kind for f in report.faults] == ["revoke"]


def test_the_proxy_forgets_on_its_own_while_serving(tmp_path: Path) -> None:
    clock = ManualClock()
    proxy = ChaosProxy(standard_config(), clock=clock, audit=tmp_path / "a.jsonl", horizon=1)
    with proxy.in_thread():
        _token(proxy)
        clock.advance(302)  # past the token's exp and the horizon
        deadline = time.monotonic() + 5
        while proxy.ledger.forgotten == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert proxy.ledger.forgotten == 1


def test_a_horizon_needs_an_audit_log_and_seconds(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="must stay in an audit log"):
        ChaosProxy(standard_config(), horizon=60)
    with pytest.raises(InvalidArgument, match="horizon=0 must be seconds > 0"):
        ChaosProxy(standard_config(), audit=tmp_path / "a.jsonl", horizon=0)
    with pytest.raises(InvalidArgument, match="keeps everything"):
        ChaosProxy(standard_config()).forget()
    base = ["proxy", "--upstream", "embedded", "--client", "svc:svc-secret:read"]
    result = run_cli(*base, "--horizon", "60")
    assert result.returncode == 2
    assert "--horizon lets what the --audit log keeps leave memory: give --audit" in result.stderr
    result = run_cli(*base, "--horizon", "-1", "--audit", str(tmp_path / "b.jsonl"))
    assert result.returncode == 2
    assert "horizon=-1.0 must be seconds > 0" in result.stderr


def test_a_grant_stays_while_a_decision_about_it_is_in_memory(tmp_path: Path) -> None:
    """A use just past exp (inside a policy's leeway) is judged later than the grant closed:
    the grant stays until that decision leaves memory too, so the checker never reads its
    token as one the IdP never issued."""
    from jitchaos import check, fingerprint

    clock = ManualClock()
    with ResourceService("introspect").in_thread() as service:
        proxy = ChaosProxy(
            standard_config(),
            services={"api": service.url},
            clock=clock,
            audit=tmp_path / "a.jsonl",
            horizon=60,
        )
        with proxy.in_thread():
            service.point_at(proxy.url, issuer=proxy.url)
            token = _token(proxy)
            clock.advance(305)  # 5 s past exp
            late = requests.get(
                proxy.service_url("api") + "/read", headers={"Authorization": f"Bearer {token}"}
            )
            assert late.status_code == 401
            clock.advance(56)  # the grant closed 61 s ago; the decision is 56 s old
            assert proxy.forget() == 0
            assert proxy.ledger.lookup(fingerprint(token)) is not None
            assert check(proxy.ledger, proxy.history.decisions) == ()
            clock.advance(5)
            assert proxy.forget() == 1
