"""``jitchaos proxy`` as a user runs it: in front of a service, driven through the control API,
over TLS, and one clear line (exit 2) for every mistake."""

from __future__ import annotations

import json
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from jitchaos import ManualClock, Schedule
from jitchaos._schedule import OnRequest, Scheduled
from jitchaos.faults import Outage, Revoke
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ProxyClient
from tests.common.cli import run_cli, serving_proxy
from tests.common.idp import standard_config
from tests.common.service import ResourceService

EMBEDDED = ["--upstream", "embedded", "--client", "svc:svc-secret:read,write"]


@pytest.fixture
def service() -> Iterator[ResourceService]:
    with ResourceService("introspect").in_thread() as running:
        yield running


def test_proxy_in_front_of_a_service_driven_by_the_control_api(
    service: ResourceService,
) -> None:
    with serving_proxy(
        *EMBEDDED, "--client", "api:api-secret:", "--service", f"api={service.url}"
    ) as (process, said):
        idp = said["idp"].split()[0]
        assert said["idp"].endswith(")")
        assert "(upstream http://127.0.0.1:" in said["idp"]
        assert idp.startswith("http://127.0.0.1:")
        service.point_at(idp, issuer=idp)
        discovery = requests.get(said["discovery"], timeout=10).json()
        assert discovery["issuer"] == idp  # the embedded IdP's issuer is the proxy itself
        token = requests.post(
            discovery["token_endpoint"],
            data={"grant_type": "client_credentials", "scope": "read"},
            auth=("svc", "svc-secret"),
            timeout=10,
        ).json()["access_token"]
        front = said["service api"].split(" -> ")[0]
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(front + "/read", headers=headers, timeout=10).status_code == 200
        control = ProxyClient(said["control"], said["secret"])
        control.apply(Revoke(target="grant:g1"))
        assert requests.get(front + "/read", headers=headers, timeout=10).status_code == 401
        decisions = [e for e in control.history() if e["type"] == "decision"]
        assert [d["status"] for d in decisions] == [200, 401]
        now = control.status()["now"]
        assert control.advance(3600) >= now + 3600  # the standalone clock can be moved
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert "stopped" in out
        assert token not in out + err


def test_secret_from_the_environment_is_not_printed(service: ResourceService) -> None:
    secret = "s3cret-from-env-0123456789"
    with serving_proxy(*EMBEDDED, env={"JITCHAOS_CONTROL_SECRET": secret}) as (_, said):
        assert "secret" not in said
        assert ProxyClient(said["control"], secret).status()["step"] == 0


def test_schedule_file_and_seed(tmp_path: Path, clock: ManualClock) -> None:
    schedule = Schedule([Scheduled(OnRequest("token", 1), Outage(endpoint="token", duration=0))])
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(schedule.to_json()))
    with EmbeddedIdP(standard_config(), clock=clock).in_thread() as idp:
        with serving_proxy("--upstream", idp.url, "--schedule", str(path)) as (_, said):
            assert said["schedule"] == "1 entries"
            token_url = said["idp"].split()[0] + "/token"
            codes = [
                requests.post(
                    token_url,
                    data={"grant_type": "client_credentials"},
                    auth=("svc", "svc-secret"),
                    timeout=10,
                ).status_code
                for _ in range(2)
            ]
            assert codes == [503, 200]
        seeded = ["--seed", "11", "--rate", "0.2", "--faults", "revoke,narrow"]
        with serving_proxy("--upstream", idp.url, *seeded) as (_, first):
            one = ProxyClient(first["control"], first["secret"]).schedule()["schedule"]
        with serving_proxy("--upstream", idp.url, *seeded) as (_, second):
            two = ProxyClient(second["control"], second["secret"]).schedule()["schedule"]
        assert one == two
        assert one == Schedule.from_seed(11, rate=0.2, faults=["revoke", "narrow"]).to_json()


def test_tls_listeners_and_https_upstream(tmp_path: Path, clock: ManualClock) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    idp = EmbeddedIdP(standard_config(), clock=clock)
    from jitchaos._loop import BackgroundLoop

    with BackgroundLoop() as loop:
        upstream = loop.run(idp.start(ssl_context=server))
        assert upstream.startswith("https://")
        try:
            args = ["--upstream", upstream, "--cert", str(cert_file), "--key", str(key_file)]
            # Without the CA, the upstream's certificate is refused: a 502 that says so.
            with serving_proxy(*args) as (_, said):
                base = said["idp"].split()[0]
                assert base.startswith("https://")
                answer = requests.get(
                    base + "/.well-known/openid-configuration", verify=str(ca_file), timeout=10
                )
                assert answer.status_code == 502
                assert "certificate" in answer.json()["error_description"].lower()
            with serving_proxy(*args, "--ca-bundle", str(ca_file)) as (_, said):
                base = said["idp"].split()[0]
                discovery = requests.get(
                    base + "/.well-known/openid-configuration", verify=str(ca_file), timeout=10
                ).json()
                assert discovery["token_endpoint"] == base + "/token"
                token = requests.post(
                    discovery["token_endpoint"],
                    data={"grant_type": "client_credentials"},
                    auth=("svc", "svc-secret"),
                    verify=str(ca_file),
                    timeout=10,
                )
                assert token.status_code == 200
                control = said["control"]
                assert control.startswith("https://")
        finally:
            loop.run(idp.stop())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: --upstream"),
        (["--upstream", "embedded"], "needs at least one --client"),
        (["--upstream", "ftp://idp"], "must be an http(s) URL"),
        (["--upstream", "http://127.0.0.1:1", "--client", "a:b:c"], "only --upstream embedded"),
        ([*EMBEDDED, "--service", "api=ftp://x"], "is not an http(s) URL"),
        ([*EMBEDDED, "--service", "bad-name=http://x"], "is not a service name"),
        ([*EMBEDDED, "--service", "a=http://x", "--service", "a=http://y"], "must differ"),
        ([*EMBEDDED, "--listen", "nohostport"], "is not HOST:PORT"),
        ([*EMBEDDED, "--listen", "127.0.0.1:99999"], "is not HOST:PORT (port 0-65535)"),
        ([*EMBEDDED, "--seed", "1"], "--seed needs --rate"),
        ([*EMBEDDED, "--rate", "0.5"], "--rate and --faults go with --seed"),
        ([*EMBEDDED, "--seed", "1", "--rate", "2", "--faults", "revoke"], "rate from 0 to 1"),
        ([*EMBEDDED, "--seed", "1", "--rate", ".1", "--faults", "meteor"], "unknown fault"),
        ([*EMBEDDED, "--seed", "1", "--schedule", "x.json"], "not allowed with argument"),
        ([*EMBEDDED, "--schedule", "/nonexistent/schedule.json"], "cannot read --schedule"),
        ([*EMBEDDED, "--cert", "c.pem"], "--cert and --key go together"),
        ([*EMBEDDED, "--cert", "/nonexistent", "--key", "/nonexistent"], "cannot load"),
        ([*EMBEDDED, "--ca-bundle", "/nonexistent/ca.pem"], "ca_bundle="),
        (["--upstream", "embedded", "--client", "svc"], "--client"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_cli("proxy", *args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("fault", "names"),
    [
        ('{"kind": "meteor"}', "unknown fault kind 'meteor'"),
        # These three were tracebacks (OverflowError, ValueError) and exit 1:
        ('{"kind": "revoke", "delay": 1' + "0" * 400 + "}", "delay="),
        ('{"kind": "revoke", "delay": 1' + "0" * 5000 + "}", "not JSON"),
        ('{"kind": "expire", "issued_ttl": -1}', "issued_ttl=-1 must be >= 1"),
    ],
)
def test_bad_schedule_file_names_the_problem(tmp_path: Path, fault: str, names: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(f'[{{"trigger": {{"type": "at_step", "step": 1}}, "fault": {fault}}}]')
    result = run_cli("proxy", *EMBEDDED, "--schedule", str(path))
    assert result.returncode == 2
    assert names in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_busy_port_is_one_line(service: ResourceService) -> None:
    with serving_proxy(*EMBEDDED) as (_, said):
        port = said["idp"].split()[0].rsplit(":", 1)[1]
        result = run_cli("proxy", *EMBEDDED, "--listen", f"127.0.0.1:{port}")
        assert result.returncode == 2
        assert "cannot listen" in result.stderr
        assert "Traceback" not in result.stderr


def test_faults_lists_every_kind() -> None:
    result = run_cli("faults")
    assert result.returncode == 0
    kinds = [line.split()[0] for line in result.stdout.splitlines()]
    assert kinds == [
        "expire",
        "revoke",
        "narrow",
        "rotate_keys",
        "outage",
        "latency",
        "clock_skew",
        "hold_refresh",
    ]


def test_the_audit_log_says_how_uses_are_judged(service: ResourceService, tmp_path: Path) -> None:
    """#18 point 3: `jitchaos proxy --audit` writes the routes' scopes and the policy into its
    log as it starts, so `jitchaos audit FILE` judges each use by them: a use the routes say
    needs a scope the token lacks is found from the file alone, and not without them."""
    policy = tmp_path / "policy.json"
    policy.write_text('{"staleness": 7}')
    found = {}
    for label, judging in (
        ("routes", ["--route", "GET /read=admin", "--policy", str(policy)]),
        ("none", []),
    ):
        log = tmp_path / f"{label}.jsonl"
        with serving_proxy(
            *EMBEDDED,
            "--client",
            "api:api-secret:",
            "--service",
            f"api={service.url}",
            "--audit",
            str(log),
            *judging,
        ) as (process, said):
            idp = said["idp"].split()[0]
            service.point_at(idp, issuer=idp)
            token = requests.post(
                idp + "/token",
                data={"grant_type": "client_credentials", "scope": "read"},
                auth=("svc", "svc-secret"),
                timeout=10,
            ).json()["access_token"]
            front = said["service api"].split(" -> ")[0]
            answer = requests.get(
                front + "/read", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert answer.status_code == 200  # the service needs read; the routes say admin
            ProxyClient(said["control"], said["secret"]).apply(Revoke(target="grant:g1"))
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=20)
        found[label] = run_cli("audit", str(log), "--json")
        first = json.loads(log.read_text().splitlines()[0])
        if label == "routes":
            assert first == {
                "type": "judging",
                "holder": None,
                "policy": {**first["policy"], "staleness": 7},
                "routes": {"GET /read": ["admin"]},
            }
    judged = json.loads(found["routes"].stdout)
    assert found["routes"].returncode == 1, found["routes"].stdout
    assert [f["kind"] for f in judged["findings"]] == ["use-outside-scope"]
    assert "GET /read" in judged["findings"][0]["finding"]
    assert found["none"].returncode == 0, found["none"].stdout
    assert json.loads(found["none"].stdout)["findings"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--route", "GET /read=read"], "--route and --policy are written into the --audit log"),
        (["--audit", "{log}", "--route", "read"], "must look like"),
        (["--audit", "{log}", "--policy", "/nonexistent.json"], "policy file"),
    ],
)
def test_bad_judging_options_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    log = str(tmp_path / "audit.jsonl")
    result = run_cli("proxy", *EMBEDDED, *[a.replace("{log}", log) for a in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "audit.jsonl").exists() or not (tmp_path / "audit.jsonl").read_text()
