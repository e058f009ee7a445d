"""The IdP side under arbitrary input: the same mangled requests the embedded IdP survives, sent
through the proxy. Never a 5xx, always JSON, and a rejected request changes neither ledger."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitchaos import ConfigError, InvalidArgument, KeyRing, Principal, ProxyClient, fingerprint
from jitchaos.idp import ClientConfig, EmbeddedIdP, parse_client
from jitchaos.proxy import ChaosProxy
from tests.common.idp import live_tokens
from tests.idp.test_bad_input import RFC_ERRORS, requests_to_endpoints
from tests.proxy.test_idp_side import raw_request


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


# Around an endpoint's name: segments a lenient server may drop or resolve, or that a URL
# library rewrites on the way upstream.
_NAMES = ["token", "TOKEN", "introspect", "revoke", "userinfo", "jwks", "authorize"]
_NOISE = ["", ".", "..", "..;", ";x", "%2e", "%2E%2e", "%FF", "%2F", "%00", "\\", "%C3%A9", "x"]
_paths = st.builds(
    lambda before, name, after: "/" + "/".join([*before, name, *after]),
    st.lists(st.sampled_from(_NOISE), max_size=3),
    st.sampled_from(_NAMES),
    st.lists(st.sampled_from(_NOISE), max_size=2),
)


def test_no_spelling_or_method_gets_a_token_past_the_ledger(idp: EmbeddedIdP) -> None:
    """Any method on any path: never a 5xx, and every token answer is in the proxy's ledger
    (its own: in front of the IdP's URL, as in front of a real IdP, not sharing the ledger of
    an IdP object it was given)."""
    with ChaosProxy(idp.url).in_thread() as proxy:
        host = proxy.url.removeprefix("http://")
        body = b"grant_type=client_credentials&scope=read"

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(
            method=st.sampled_from(["POST", "GET", "OPTIONS", "HEAD", "PUT", "FOO"]),
            path=_paths,
            query=st.sampled_from(["", "?a=1", "?grant_type=client_credentials"]),
        )
        def check(method: str, path: str, query: str) -> None:
            path += query
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                "Authorization: Basic c3ZjOnN2Yy1zZWNyZXQ=\r\n"  # svc:svc-secret
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            answer = raw_request(proxy.url, head.encode() + body)
            status = int(answer.split(b" ", 2)[1])
            assert status < 500, (method, path, answer[:300])
            issued = answer.partition(b"\r\n\r\n")[2]
            if status == 200 and b'"access_token"' in issued:
                token = json.loads(issued)["access_token"]
                assert proxy.ledger.lookup(fingerprint(token)) is not None, (method, path)

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


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"services": ["a"]}, "services=['a'] must map names to http(s) URLs"),
        ({"services": "a=http://x"}, "services='a=http://x' must map names"),
        ({"services": {"a": "http://[bad"}}, "services: 'a'='http://[bad' must map a name"),
        # Never reachable, or silently cut from every request:
        ({"services": {"a": "http://a b"}}, "services: 'a'='http://a b' must map a name"),
        ({"services": {"a": "http://h/p?q=1"}}, "with a host and no query or fragment"),
        ({"services": {"a": "http://h/p#f"}}, "with a host and no query or fragment"),
        ({"clock": "x"}, "clock='x' must have now()"),
        ({"audit": 5}, "audit=5 must have write(event)"),
        ({"ca_bundle": 5}, "ca_bundle=5 must be a path to PEM CA certificates"),
        ({"upstream_timeout": float("inf")}, "upstream_timeout=inf must be seconds > 0"),
    ],
)
def test_a_proxy_set_up_wrong_names_what_is_wrong(
    idp: EmbeddedIdP, settings: dict[str, Any], names: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ChaosProxy(idp, **settings)
    assert names in str(caught.value)


def test_the_python_entry_points_name_bad_values(idp: EmbeddedIdP) -> None:
    proxy = ChaosProxy(idp, services={"api": "http://127.0.0.1:9"})
    for fault in (None, "expire"):
        with pytest.raises(InvalidArgument, match="must be a fault value"):
            proxy.apply(fault)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"url='http://\[bad' must be an http\(s\) URL"):
        proxy.retarget("api", "http://[bad")
    with pytest.raises(InvalidArgument, match="no query or fragment"):
        proxy.retarget("api", "http://127.0.0.1:9/?tenant=1")
    assert str(proxy.services["api"]) == "http://127.0.0.1:9"  # unchanged
    client = ProxyClient("http://127.0.0.1:9", "s" * 24)
    with pytest.raises(InvalidArgument, match="must be a fault value"):
        client.apply("expire")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="since='0&x=1' must be a history position"):
        client.history(since="0&x=1")  # type: ignore[arg-type]
    clients: list[tuple[dict[str, Any], str]] = [
        ({"timeout": -1}, "timeout=-1 must be a finite number >= 0"),
        ({"timeout": float("nan")}, "timeout=nan"),
        ({"secret": "a\nb"}, "secret must be the proxy's control secret"),
        ({"url": "http://[bad"}, "url='http://[bad' is not a URL"),
    ]
    for wrong, names in clients:
        arguments: dict[str, Any] = {"url": "http://127.0.0.1:9", "secret": "s" * 24}
        arguments.update(wrong)
        with pytest.raises(InvalidArgument, match=re.escape(names)):
            ProxyClient(**arguments)
    with pytest.raises(InvalidArgument, match="principal=None is not 'subject:NAME'"):
        Principal.parse(None)
    with pytest.raises(ConfigError, match="client None is not ID:SECRET:SCOPES text"):
        parse_client(None)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"redirect_uris='http://127\.0\.0\.1/cb' must be a list"
    ):
        ClientConfig("spa", None, {"read"}, redirect_uris="http://127.0.0.1/cb")
    with pytest.raises(InvalidArgument, match="key='x' must be a SigningKey"):
        KeyRing(key="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="source='x' must be a callable"):
        KeyRing(source="x")  # type: ignore[arg-type]
