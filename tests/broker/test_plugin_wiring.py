"""The pytest plugin's wiring (#19 point 2): it fronts an introspecting service in its own
process, started by a session fixture that needs the proxy's URL first (the service is named
in ``jitchaos_services`` without a URL and given one with ``jitchaos_proxy.retarget``), with
the audience, token lifetime, users and introspection client set by ini options."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = f"""
import os
import socket
import subprocess
import sys
import time

import pytest
import requests


@pytest.fixture(scope="session", autouse=True)
def orders(jitchaos_proxy, jitchaos_idp):
    # The service needs the proxy's IdP side before it starts; the proxy gets its URL after.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "jitchaos.known_bugs", "stateless_jwt", "--fixed",
         "--idp", jitchaos_proxy.url, "--issuer", jitchaos_idp.issuer,
         "--port", str(port), "--audience", "orders-api",
         "--client", "orders-api:" + os.environ["ORDERS_SECRET"]],
        cwd={str(ROOT)!r},
    )
    url = f"http://127.0.0.1:{{port}}"
    for _ in range(200):
        try:
            requests.get(url + "/read", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    jitchaos_proxy.retarget("orders", url)
    yield url
    process.terminate()
    process.wait(10)
"""

SUITE = """
import jwt
import pytest
import requests


# The twin remembers each introspection answer for 10 s.
@pytest.mark.jitchaos_policy(staleness=15)
def test_reads_then_loses_it(jit, jitchaos_services, jitchaos_idp):
    credential = jit.grant("client:jitchaos", {"read"}, ttl=60)
    claims = jwt.decode(str(credential.access_token), options={"verify_signature": False})
    assert claims["aud"] == "orders-api"
    assert {u.name: set(u.scopes) for u in jitchaos_idp.config.users} == {
        "carol": {"openid", "read", "write"}, "dave": {"read"}}
    assert jitchaos_idp.config.access_ttl == 90
    read = requests.get(jitchaos_services["orders"] + "/read", headers=credential.headers)
    assert read.status_code == 200, read.text
    jit.revoke(credential)
"""

INI = """
[pytest]
jitchaos_services = orders
jitchaos_routes =
    GET /read=read
jitchaos_audience = orders-api
jitchaos_token_ttl = 90
jitchaos_users = carol dave:read
jitchaos_introspection_client = orders-api:$ORDERS_SECRET
"""


def test_the_plugin_fronts_an_introspecting_service_started_by_a_fixture(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_SECRET", "orders-secret-42")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_orders=SUITE)
    pytester.makeini(INI)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    # Without the introspection client the service cannot introspect: its calls are refused.
    pytester.makeini(INI.replace("jitchaos_introspection_client", "# "))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("jitchaos_token_ttl = soon", "jitchaos_token_ttl: 'soon' is not a whole number"),
        ("jitchaos_users = erin:admin", "erin holds ['admin'], not in jitchaos_scopes"),
        ("jitchaos_introspection_client = orders-api", "orders-api:... is not ID:SECRET"),
        ("jitchaos_introspection_client = orders-api:$NOPE_UNSET", "$NOPE_UNSET is not set"),
        ("jitchaos_audience =", "audience='' must be a non-empty string"),
        ("jitchaos_services = orders=", "is not NAME=URL (or NAME, its URL given later)"),
    ],
)
def test_wrong_wiring_is_a_usage_error(pytester: pytest.Pytester, line: str, says: str) -> None:
    pytester.makepyfile(test_one="def test_one(jit):\n    pass\n")
    pytester.makeini(f"[pytest]\n{line}\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    assert says in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stderr.str()
