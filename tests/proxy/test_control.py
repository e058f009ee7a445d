"""The control API: behind its secret, RFC 9457 errors, and the ProxyClient that drives it."""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest
import requests
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from jitchaos import ManualClock, Schedule
from jitchaos._loop import BackgroundLoop
from jitchaos._schedule import AtStep, Scheduled
from jitchaos.errors import ControlError, InvalidArgument
from jitchaos.faults import Narrow, Outage, Revoke
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ChaosProxy, ProxyClient
from jitchaos.proxy._metrics import Metrics
from tests.common.idp import client_credentials
from tests.common.service import served
from tests.proxy.conftest import Front

ROUTES = [
    ("GET", "/status"),
    ("GET", "/schedule"),
    ("PUT", "/schedule"),
    ("POST", "/faults"),
    ("POST", "/step"),
    ("POST", "/clock"),
    ("GET", "/history"),
    ("GET", "/audit"),
    ("POST", "/reset"),
    ("GET", "/metrics"),
    ("GET", "/no-such-route"),
]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret-wrong-secret", "Basic x"])
def test_without_the_secret_401_and_nothing_changes(
    front: Front, clock: ManualClock, authorization: str | None
) -> None:
    proxy, _ = front()
    client_credentials(proxy, "read")
    before = (proxy.history.entries, proxy.engine.schedule, clock.now(), proxy.ledger.events)
    bodies = {
        "/schedule": '[{"trigger": {"type": "at_step", "step": 1}, "fault": {"kind": "revoke"}}]',
        "/faults": '{"kind": "revoke", "target": "grant:g1"}',
        "/clock": '{"advance": 100}',
    }
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in ROUTES:
        answer = requests.request(
            method, proxy.control_url + path, data=bodies.get(path), headers=headers, timeout=10
        )
        assert answer.status_code == 401, (method, path)
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["status"] == 401
    after = (proxy.history.entries, proxy.engine.schedule, clock.now(), proxy.ledger.events)
    assert after == before


def test_client_drives_the_proxy(front: Front, clock: ManualClock) -> None:
    proxy, _ = front("introspect")
    control = ProxyClient(proxy.control_url, proxy.secret)
    assert proxy.secret not in repr(control)
    token = client_credentials(proxy, "read write")["access_token"]
    schedule = Schedule(
        [Scheduled(AtStep(2), Narrow(scopes=frozenset({"read"}), target="grant:g1"))]
    )
    assert control.load(schedule) == 1
    assert control.schedule()["pending"] == schedule.to_json()
    assert control.step()["fired"] == []
    fired = control.step()["fired"]
    assert [f["fault"]["kind"] for f in fired] == ["narrow"]
    assert fired[0]["detail"] == "narrowed g1 to [read]"
    assert control.status()["step"] == 2
    start = clock.now()
    assert control.advance(30) == start + 30
    assert control.set_time(start + 40) == clock.now() == start + 40
    applied = control.apply(Revoke(target="grant:g1"))
    assert applied["applied"] is True
    assert [e["type"] for e in control.history()] == ["fault", "fault"]
    assert len(control.history(since=1)) == 1
    audit = control.audit()
    assert [e["event"] for e in audit["events"]] == ["granted", "narrowed", "revoked"]
    assert audit["open_grants"] == []
    assert token not in str(audit)
    control.reset()
    assert control.history() == []
    assert control.schedule()["schedule"] == []


def test_bad_requests_get_problem_details_and_change_nothing(front: Front) -> None:
    proxy, _ = front()
    control = ProxyClient(proxy.control_url, proxy.secret)
    cases = [
        ("PUT", "/schedule", "not json", "not JSON"),
        ("PUT", "/schedule", '{"a": 1}', "JSON list"),
        (
            "PUT",
            "/schedule",
            '[{"trigger": {"type": "at_step", "step": 0}, "fault": {"kind": "revoke"}}]',
            "step=0",
        ),
        ("POST", "/faults", '{"kind": "meteor"}', "unknown fault kind 'meteor'"),
        ("POST", "/faults", '{"kind": "outage", "mode": "flood"}', "mode='flood'"),
        ("POST", "/faults", '{"kind": "revoke", "target": "everyone"}', "target='everyone'"),
        ("POST", "/faults", "[]", "must be an object with a 'kind'"),
        ("POST", "/clock", '{"advance": -5}', "never goes back"),
        ("POST", "/clock", '{"jump": 5}', '{"advance": SECONDS}'),
        ("GET", "/history?since=x", None, "since='x'"),
        # These were 500s with a traceback:
        ("GET", "/history?since=" + "9" * 5000, None, "must be a whole number"),
        ("GET", "/history?since=%C2%B2", None, "since='²'"),  # isdigit() takes it, int() not
        ("PUT", "/schedule", "[" * 100000 + "]" * 100000, "too deeply"),
        ("POST", "/faults", "[" * 100000 + "]" * 100000, "too deeply"),
        ("POST", "/clock", '{"advance": 1' + "0" * 400 + "}", "must be a finite number"),
        ("POST", "/clock", '{"set": 1' + "0" * 400 + "}", "must be a finite number"),
        ("POST", "/faults", '{"kind": "revoke", "delay": 1' + "0" * 400 + "}", "delay="),
        ("POST", "/faults", '{"kind": "expire", "issued_ttl": 0}', "issued_ttl=0 must be >= 1"),
        ("POST", "/faults", '{"kind": "hold_refresh", "count": 1}', "count=1 must be >= 2"),
        ("PUT", "/schedule", "[" + "1" * 5000 + "]", "not JSON"),
    ]
    for method, path, body, detail in cases:
        answer = requests.request(
            method,
            proxy.control_url + path,
            data=body,
            headers={"Authorization": f"Bearer {proxy.secret}"},
            timeout=10,
        )
        assert answer.status_code == 400, (path, body, answer.text)
        problem = answer.json()
        assert problem["status"] == 400
        assert detail in problem["detail"], problem
    assert control.history() == []
    assert control.schedule()["schedule"] == []
    with pytest.raises(ControlError, match="404") as caught:
        control._call("GET", "/nothing")
    assert caught.value.status == 404
    answer = requests.delete(
        proxy.control_url + "/schedule",
        headers={"Authorization": f"Bearer {proxy.secret}"},
        timeout=10,
    )
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(",")) >= {"GET", "PUT"}


def test_client_errors(front: Front) -> None:
    proxy, _ = front()
    with pytest.raises(ControlError, match="401") as caught:
        ProxyClient(proxy.control_url, "not-the-secret").status()
    assert caught.value.status == 401
    with pytest.raises(InvalidArgument, match="url="):
        ProxyClient("localhost:1", "x")
    with pytest.raises(ControlError, match="unreachable"):
        ProxyClient("http://127.0.0.1:9", "s" * 20, timeout=2).status()
    with pytest.raises(InvalidArgument, match="printable ASCII"):
        ProxyClient(proxy.control_url, "s" * 20 + "€")  # it could never be sent


def test_client_names_a_server_that_is_not_the_control_api() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>a login page</html>")

    app = web.Application()
    app.router.add_get("/status", html)
    with BackgroundLoop() as loop, served(app) as url:
        server = loop.run(asyncio.start_server(garbage, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ControlError, match="not HTTP"):
            ProxyClient(f"http://127.0.0.1:{port}", "s" * 20).status()
        with pytest.raises(ControlError, match="not a JSON object"):
            ProxyClient(url, "s" * 20).status()
        loop.run(_close(server))


def test_clock_that_cannot_move_is_409(idp: EmbeddedIdP) -> None:
    from jitchaos import SystemClock

    with ChaosProxy(idp, clock=SystemClock()).in_thread() as proxy:
        with pytest.raises(ControlError, match="cannot be moved") as caught:
            ProxyClient(proxy.control_url, proxy.secret).advance(5)
        assert caught.value.status == 409


def test_metrics_in_prometheus_text_format(front: Front) -> None:
    proxy, _ = front("introspect")
    control = ProxyClient(proxy.control_url, proxy.secret)
    token = client_credentials(proxy, "read")["access_token"]
    for _ in range(2):
        requests.get(
            proxy.service_url("api") + "/read",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    control.apply(Outage(endpoint="jwks", duration=0))
    control.apply(Revoke(target="principal:client:nobody"))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(control.metrics())
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples[("jitchaos_decisions_total", (("service", "api"), ("status", "200")))] == 2
    assert samples[("jitchaos_proxy_requests_total", (("side", "idp"), ("target", "token")))] == 1
    # Introspection: two by the service, none by the test.
    assert (
        samples[("jitchaos_proxy_requests_total", (("side", "idp"), ("target", "introspection")))]
        == 2
    )
    assert samples[("jitchaos_faults_applied_total", (("kind", "outage"),))] == 1
    assert samples[("jitchaos_faults_applied_total", (("kind", "revoke"),))] == 1


def test_metrics_follow_prometheus_clients_created_series_setting() -> None:
    """PROMETHEUS_DISABLE_CREATED_SERIES sets what disable_created_metrics() does."""
    metrics = Metrics()
    metrics.request("idp", "token")
    assert b'jitchaos_proxy_requests_created{side="idp",target="token"}' in metrics.exposition()
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        text = metrics.exposition()
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]
    assert b"_created" not in text
    assert b'jitchaos_proxy_requests_total{side="idp",target="token"} 1.0' in text


def test_secret_is_checked_and_generated() -> None:
    with pytest.raises(InvalidArgument, match="secret"):
        ChaosProxy("http://127.0.0.1:1", secret="short")
    with pytest.raises(InvalidArgument, match="printable ASCII"):
        ChaosProxy("http://127.0.0.1:1", secret="s" * 16 + "€")  # no client could send it
    first = ChaosProxy("http://127.0.0.1:1")
    second = ChaosProxy("http://127.0.0.1:1")
    assert len(first.secret) >= 24
    assert first.secret != second.secret


async def _close(server: asyncio.Server) -> None:
    server.close()  # on its own loop's thread


def test_the_index_lists_every_route(front: Front) -> None:
    proxy, _ = front("jwt")
    answer = requests.get(
        proxy.control_url + "/",
        headers={"Authorization": f"Bearer {proxy.secret}"},
        timeout=10,
    )
    assert answer.status_code == 200
    index = answer.json()
    listed = {(route["method"], route["path"]) for route in index["routes"]}
    assert ("PUT", "/schedule") in listed
    assert "Bearer SECRET" in index["authorization"]
    for method, path in listed:  # each one listed is served (not a 404 or 405)
        reached = requests.request(
            method,
            proxy.control_url + path,
            headers={"Authorization": f"Bearer {proxy.secret}"},
            data=b"{",  # a bad body where one is needed: a 400, never a 404 or 405
            timeout=10,
        )
        assert reached.status_code not in (404, 405), (method, path)
    assert requests.get(proxy.control_url + "/", timeout=10).status_code == 401
