"""The IdP side under arbitrary input: the same mangled requests the embedded IdP survives, sent
through the proxy. Never a 5xx, always JSON, and a rejected request changes neither ledger."""

from __future__ import annotations

from typing import Any

import requests
from hypothesis import HealthCheck, given, settings

from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ChaosProxy
from tests.common.idp import live_tokens
from tests.idp.test_bad_input import RFC_ERRORS, requests_to_endpoints


def test_proxy_survives_arbitrary_input(idp: EmbeddedIdP) -> None:
    with ChaosProxy(idp).in_thread() as proxy:
        tokens = live_tokens(proxy)
        session = requests.Session()

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(request=requests_to_endpoints(tokens))
        def check(request: dict[str, Any]) -> None:
            before = (proxy.ledger.events, idp.ledger.events)
            response = session.post(
                f"{proxy.url}{request['path']}",
                data=request["body"],
                headers=request["headers"],
                timeout=10,
            )
            assert response.status_code < 500, response.text
            assert response.headers["Content-Type"].startswith("application/json")
            body = response.json()
            if response.status_code >= 400:
                assert body["error"] in RFC_ERRORS
                if body["error"] != "invalid_grant":  # reuse detection may end a family
                    assert (proxy.ledger.events, idp.ledger.events) == before

        check()


def test_an_oversized_request_gets_a_json_error_and_changes_nothing(idp: EmbeddedIdP) -> None:
    with ChaosProxy(idp).in_thread() as proxy:
        before = (proxy.ledger.events, idp.ledger.events)
        response = requests.post(
            f"{proxy.url}/token",
            data=b"grant_type=client_credentials&pad=" + b"x" * 300_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )
        assert response.status_code == 413
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "the request body is over 262144 bytes",
        }
        assert (proxy.ledger.events, idp.ledger.events) == before
        # and it keeps serving
        assert requests.get(f"{proxy.url}/.well-known/openid-configuration", timeout=10).ok
