"""Just-in-time credentials from a real, certified OpenID provider (node-oidc-provider) that
issues JWT access tokens (which it refuses to revoke, as RFC 7009 allows) or opaque ones, each
90 s long: a suite using the pytest plugin as a CI would, clean tests clean and leaky ones
caught, in the test and offline (``jitchaos audit`` on the log) alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from jitchaos import Leased, Returned, read_audit
from tests.common.cli import run_cli
from tests.common.oidc_provider import RESOURCE, node_oidc_provider

pytestmark = pytest.mark.slow
pytest_plugins = ["pytester"]

CLIENTS = {
    "ci": ("ci-secret-for-the-suite", "read write"),
    "ci-reader": ("reader-secret-for-the-suite", "read"),
}
INI = """
[pytest]
jitchaos_services = api=http://127.0.0.1:9
jitchaos_routes =
    GET /read=read
"""

CLEAN = f"""
import pytest
import requests


def test_lease_and_give_back(jit):
    with jit.lease("client:ci", {{"read"}}, ttl=120) as credential:
        assert credential.scopes == {{"read"}}
        assert credential.expires_at - jit.clock.now() == pytest.approx(90, abs=2)


def test_another_client_bound_to_a_resource(jit):
    with jit.lease("client:ci-reader", {{"read"}}, ttl=90, resource="{RESOURCE}") as credential:
        assert credential.resource == "{RESOURCE}"
        assert credential.principal.name == "ci-reader"
"""

LEAKY = """
import requests


def test_asks_less_than_the_idp_gives(jit):
    with jit.lease("client:ci", {"read"}, ttl=30):
        pass


def test_never_gives_it_back(jit):
    jit.grant("client:ci", {"read"}, ttl=120)


def test_uses_it_after_giving_it_back(jit, jitchaos_services):
    with jit.lease("client:ci", {"read"}, ttl=120) as credential:
        pass
    requests.get(jitchaos_services["api"] + "/read", headers=credential.headers, timeout=10)
"""

FAILING_REVOCATION = """
from pathlib import Path

from jitchaos.faults import Outage


def test_revocation_fails(jit, jitchaos_proxy):
    with jit.lease("client:ci", {"read"}, ttl=120) as credential:
        Path("raw-token.txt").write_text(credential.access_token)
        jitchaos_proxy.apply(Outage(endpoint="revocation", duration=60))
"""


@pytest.fixture(params=["jwt", "opaque"], scope="module")
def issuer(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    with node_oidc_provider(format=request.param, ttl=90, clients=CLIENTS) as url:
        yield request.param, url


def run_suite(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    issuer: str,
    suite: str,
    *extra: str,
) -> tuple[pytest.RunResult, Path]:
    pytester.makeini(INI)
    pytester.makepyfile(test_suite=suite)
    monkeypatch.setenv("JITCHAOS_CLIENTS", ",".join(f"{c}:{s}" for c, (s, _) in CLIENTS.items()))
    log = pytester.path / "audit.jsonl"
    result = pytester.runpytest_subprocess(
        "--jitchaos-upstream",
        issuer,
        "--jitchaos-audit",
        str(log),
        "-p",
        "no:cacheprovider",
        *extra,
    )
    return result, log


def test_a_clean_suite_is_clean_in_the_test_and_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, issuer: tuple[str, str]
) -> None:
    kind, url = issuer
    result, log = run_suite(pytester, monkeypatch, url, CLEAN)
    result.assert_outcomes(passed=2)
    returns = [e for e in read_audit(log).events if isinstance(e, Returned)]
    assert len(returns) == 2
    leases = [e for e in read_audit(log).events if isinstance(e, Leased)]
    assert [lease.resource for lease in leases] == [None, RESOURCE]
    assert all(e.by_holder for e in returns)
    offline = run_cli("audit", str(log))
    assert offline.returncode == 0, offline.stdout
    assert "least privilege kept" in offline.stdout
    assert f"bound to resource {RESOURCE}" in offline.stdout
    if kind == "jwt":
        # The IdP does not revoke structured tokens: each lease ended cleanly, and the
        # audit says how long each token stays valid after its return.
        assert not any(e.revoked for e in returns)
        assert all("does not revoke this token type" in e.reason for e in returns)
        assert len(re.findall(r"\d+s of exposure", offline.stdout)) == 2, offline.stdout
    else:
        assert all(e.revoked for e in returns)
        assert "exposure" not in offline.stdout


def test_a_leaky_suite_is_caught_in_the_test_and_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, issuer: tuple[str, str]
) -> None:
    _, url = issuer
    result, log = run_suite(pytester, monkeypatch, url, LEAKY)
    result.assert_outcomes(failed=3)
    expected = [
        "*[[]lifetime-beyond-request[]] grant g*: asked 30s, the IdP issued 90s*",
        "*[[]open-grant[]] grant g* (client:ci, read) granted to "
        "test_suite.py::test_never_gives_it_back*",
        "*[[]use-after-return[]] token * was used (GET /read -> 502)*after it was given back*",
    ]
    result.stdout.fnmatch_lines(expected, consecutive=False)
    offline = run_cli("audit", str(log))
    assert offline.returncode == 1
    for pattern in ("[lifetime-beyond-request]", "[use-after-return]"):
        assert pattern in offline.stdout, offline.stdout
    assert "never given back: the fixture took it back" in offline.stdout


def test_no_token_in_the_output_of_a_failing_revocation(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, issuer: tuple[str, str]
) -> None:
    _, url = issuer
    # -l shows every frame's locals, --tb=long every frame's arguments: all go through repr.
    result, log = run_suite(pytester, monkeypatch, url, FAILING_REVOCATION, "-l", "--tb=long")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*BrokerError*revocation refused with HTTP 503*"])
    token = (pytester.path / "raw-token.txt").read_text()
    output = "\n".join(result.outlines + result.errlines) + log.read_text()
    for piece in (token, token[:24], token[-24:]):
        assert piece not in output
    assert "<secret " in output  # the credential was shown, as its fingerprint
    (returned,) = [e for e in read_audit(log).events if isinstance(e, Returned)]
    assert not returned.revoked
    assert "HTTP 503" in returned.reason
