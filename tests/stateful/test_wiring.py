"""Wiring is configuration (#19 point 2): the audience, lifetimes, clients (the introspection
client included) and users the system under test is configured with are set on the machine
class, and by ``jitchaos run``'s options, instead of being the embedded IdP's private
defaults."""

from __future__ import annotations

import json
from functools import partial
from typing import ClassVar

import jwt
import pytest

from jitchaos import AuthChaosMachine, Policy
from jitchaos._run import run_scenario
from jitchaos._worlds import Wiring
from jitchaos.errors import InvalidArgument
from jitchaos.known_bugs import introspection_cache, jwks_cache, stateless_jwt
from tests.common.cli import run_cli

ROUTES = {"GET /read": {"read"}, "POST /write": {"write"}}


class OrdersWiring(AuthChaosMachine):
    """A service configured as an 'orders' team would: its own audience and client names."""

    actions = frozenset({"grant", "login", "call", "revoke", "advance"})
    policy = Policy(staleness=15)
    routes: ClassVar = ROUTES
    audience = "orders-api"
    access_ttl = 120
    grant_client = "orders-ci:ci-secret-1"
    introspection_client = "orders-api:api-secret-2"
    users: ClassVar = {"carol": {"read", "write"}, "dave": {"read"}}


def test_a_service_with_its_own_audience_is_judged_clean() -> None:
    # stateless_jwt's twin checks aud, iss and exp with PyJWT, then introspects: with the
    # default audience ('jitchaos') every call is refused and the run is valid-token-rejected.
    service = partial(
        stateless_jwt.make_app,
        fixed=True,
        audience="orders-api",
        client=("orders-api", "api-secret-2"),
    )
    outcome = run_scenario(OrdersWiring, service=service, examples=15)
    assert outcome.failure is None, outcome.failure
    assert outcome.report.judged > 0
    wrong = run_scenario(
        OrdersWiring, service=service, examples=15, wiring={"audience": "jitchaos"}
    )
    assert wrong.failure is not None
    assert "valid-token-rejected" in wrong.failure


def test_an_introspecting_service_uses_the_configured_client() -> None:
    service = partial(
        introspection_cache.make_app, fixed=True, ttl=1, client=("orders-api", "api-secret-2")
    )
    outcome = run_scenario(OrdersWiring, service=service, examples=15)
    assert outcome.failure is None, outcome.failure
    assert outcome.report.judged > 0
    # The default introspection client is not one of this IdP's any more: every call 5xx or
    # refused, never a clean verdict.
    default = partial(introspection_cache.make_app, fixed=True, ttl=1)
    refused = run_scenario(OrdersWiring, service=default, examples=10)
    assert refused.failure is not None


def test_the_embedded_idp_issues_what_the_wiring_says() -> None:
    import base64
    import urllib.parse

    from jitchaos._oauth_client import exchange
    from jitchaos._worlds import _World

    def basic(client_id: str, secret: str) -> dict[str, str]:
        raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return {
            "Authorization": f"Basic {raw}",
            "Content-Type": "application/x-www-form-urlencoded",
        }

    scopes = frozenset({"read", "write"})
    world = _World(scopes, {}, True, wiring=Wiring.from_machine(OrdersWiring, scopes))
    try:
        url = world.proxy.url
        status, _, body = exchange(
            "POST",
            f"{url}/token",
            headers=basic("orders-ci", "ci-secret-1"),
            body=b"grant_type=client_credentials&scope=read",
        )
        assert status == 200, body
        token = json.loads(body)["access_token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["aud"] == "orders-api"
        assert claims["exp"] - claims["iat"] == 120
        form = urllib.parse.urlencode({"token": token}).encode()
        status, _, body = exchange(
            "POST", f"{url}/introspect", headers=basic("orders-api", "api-secret-2"), body=form
        )
        assert status == 200
        assert json.loads(body)["active"] is True
        status, _, _ = exchange(
            "POST",
            f"{url}/introspect",
            headers=basic("machine-api", "machine-api-secret"),
            body=form,
        )
        assert status == 401  # the default introspection client is not configured here
        assert {u.name: set(u.scopes) for u in world.idp.config.users} == {
            "carol": {"read", "write"},
            "dave": {"read"},
        }
        assert world.token_life == 120
    finally:
        world.close()


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("audience", "", "OrdersWiring.audience='' must be a non-empty string"),
        ("access_ttl", 0, "OrdersWiring.access_ttl=0 must be a positive whole number"),
        ("grant_client", "just-an-id", "OrdersWiring.grant_client='just-an-id' must look like"),
        ("introspection_client", 42, "OrdersWiring.introspection_client must be 'ID:SECRET'"),
        ("app_client", "orders-ci:other", "must be three different clients"),
        ("users", {"erin": {"admin"}}, "'erin' holds ['admin'], not in scopes"),
        ("users", {"erin": set()}, "'erin' must hold at least one scope"),
    ],
)
def test_wrong_wiring_is_named(setting: str, value: object, says: str) -> None:
    broken = type("OrdersWiring", (OrdersWiring,), {setting: value})
    with pytest.raises(TypeError, match=None) as raised:
        Wiring.from_machine(broken, frozenset({"read", "write"}))
    assert says in str(raised.value)
    with pytest.raises(InvalidArgument) as also:
        run_scenario(OrdersWiring, service=jwks_cache.make_app, wiring={setting: value})
    assert says.replace("OrdersWiring.", "") in str(also.value).replace("OrdersWiring.", "")


def test_a_secret_never_shows_in_an_error() -> None:
    broken = type("OrdersWiring", (OrdersWiring,), {"grant_client": "orders-ci:top:secret"})
    with pytest.raises(TypeError) as raised:
        Wiring.from_machine(broken, frozenset({"read"}))
    assert "orders-ci:***" in str(raised.value)
    assert "top" not in str(raised.value)


def test_wiring_and_an_upstream_do_not_mix() -> None:
    with pytest.raises(InvalidArgument, match="provider's own clients"):
        run_scenario(
            OrdersWiring,
            service="http://127.0.0.1:9",
            upstream="http://127.0.0.1:9",
            wiring={"audience": "x"},
        )
    with pytest.raises(InvalidArgument, match="wiring names no setting"):
        run_scenario(OrdersWiring, service=jwks_cache.make_app, wiring={"issuer": "x"})


def test_the_cli_takes_the_wiring_and_refuses_it_wrong() -> None:
    done = run_cli("run", "--help")
    for option in (
        "--audience",
        "--ttl",
        "--refresh-ttl",
        "--grant-client",
        "--introspection-client",
        "--app-client",
        "--user",
    ):
        assert option in done.stdout, option
    bad = run_cli(
        "run",
        "strategies/role_narrowing.py",
        "--service",
        "http://127.0.0.1:9",
        "--grant-client",
        "ci:s3cr3t:x",
    )
    assert bad.returncode == 2
    assert "s3cr3t" not in bad.stderr
    assert "'ci:***' is not ID:SECRET" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2
    users = run_cli(
        "run", "strategies/role_narrowing.py", "--service", "http://127.0.0.1:9", "--user", "erin"
    )
    assert users.returncode == 2
    assert "'erin' is not NAME:SCOPES" in users.stderr
    mixed = run_cli(
        "run",
        "strategies/role_narrowing.py",
        "--service",
        "http://127.0.0.1:9",
        "--upstream",
        "http://127.0.0.1:9",
        "--audience",
        "orders-api",
    )
    assert mixed.returncode == 2, mixed.stderr
    assert "the embedded IdP's wiring" in mixed.stderr
