"""Hypothesis throws arbitrary bodies, headers, grant types, client credentials and tokens at the
token, introspection and revocation endpoints: never a 5xx, always JSON, and a rejected request
leaves the ledger as it was."""

from __future__ import annotations

import base64
import string
import urllib.parse
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitchaos import Revoked, fingerprint
from jitchaos.idp import EmbeddedIdP
from jitchaos.strategies import scopes
from tests.common.idp import live_tokens

RFC_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "not_found",
}

text = st.text(max_size=40) | st.text(string.printable, max_size=40)
# What a header value can carry on the wire: latin-1, no control characters.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
)
NAMES = [
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "refresh_token",
    "code",
    "code_verifier",
    "redirect_uri",
    "token",
    "token_type_hint",
    "ttl",
]


@st.composite
def requests_to_endpoints(draw: st.DrawFn, tokens: dict[str, str]) -> dict[str, Any]:
    known = st.sampled_from(sorted(tokens.values()))
    value = st.one_of(
        text,
        known,
        st.sampled_from(
            [
                "client_credentials",
                "refresh_token",
                "authorization_code",
                "password",
                "",
                "svc",
                "svc-secret",
                "spa",
                "access_token",
                "refresh_token",
                "0",
                "-1",
                "3601",
                "99999999999",
                "1e3",
            ]
        ),
        scopes().map(" ".join),
        known.map(lambda t: t[:-3]),  # truncated
        known.map(lambda t: t + "x"),
    )
    # Start from a plausible request (so the deep checks are reached), then mangle it.
    path, credentials, base = draw(
        st.sampled_from(
            [
                (
                    "/token",
                    ("svc", "svc-secret"),
                    [("grant_type", "client_credentials"), ("scope", "read"), ("ttl", "60")],
                ),
                (
                    "/token",
                    ("web", "web-secret"),
                    [
                        ("grant_type", "refresh_token"),
                        ("refresh_token", tokens["user_refresh"]),
                        ("scope", "read"),
                        ("ttl", "60"),
                    ],
                ),
                (
                    "/token",
                    ("web", "web-secret"),
                    [
                        ("grant_type", "authorization_code"),
                        ("code", "c" * 43),
                        ("code_verifier", "v" * 43),
                        ("redirect_uri", "http://127.0.0.1/cb"),
                    ],
                ),
                ("/introspect", ("api", "api-secret"), [("token", tokens["user_access"])]),
                (
                    "/revoke",
                    ("svc", "svc-secret"),
                    [("token", tokens["service"]), ("token_type_hint", "access_token")],
                ),
            ]
        )
    )
    pairs = [
        (name, draw(value) if draw(st.booleans()) else original)
        for name, original in base
        if draw(st.integers(0, 4))
    ]
    pairs += draw(st.lists(st.tuples(st.sampled_from(NAMES) | text, value), max_size=4))
    body_kind = draw(st.sampled_from(["form", "form", "form", "raw", "json", "none"]))
    headers: dict[str, str] = {}
    body: bytes | None
    if body_kind == "form":
        body = urllib.parse.urlencode(pairs).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body_kind == "raw":
        body = draw(st.binary(max_size=200))
        headers["Content-Type"] = draw(
            st.sampled_from(
                [
                    "application/x-www-form-urlencoded",
                    "application/x-www-form-urlencoded; charset=latin-1",
                    "text/plain",
                    "multipart/form-data; boundary=x",
                ]
            )
        )
    elif body_kind == "json":
        body = repr(dict(pairs)).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = None
    auth = draw(
        st.one_of(
            st.just("Basic " + base64.b64encode(":".join(credentials).encode()).decode()),
            st.none(),
            st.sampled_from(
                [
                    ("svc", "svc-secret"),
                    ("web", "web-secret"),
                    ("api", "api-secret"),
                    ("svc", "wrong"),
                    ("spa", ""),
                ]
            ).map(lambda pair: "Basic " + base64.b64encode(":".join(pair).encode()).decode()),
            header_text.map(lambda t: "Basic " + t),
            header_text.map(lambda t: "Bearer " + t),
            header_text.map(str.lstrip),  # requests refuses leading whitespace itself
        )
    )
    if auth is not None:
        headers["Authorization"] = auth
    path = draw(st.sampled_from([path, path, "/token", "/introspect", "/revoke"]))
    return {"path": path, "body": body, "headers": headers, "pairs": pairs}


@pytest.fixture(name="live_tokens")
def _live_tokens(idp: EmbeddedIdP) -> dict[str, str]:
    return live_tokens(idp)


def test_endpoints_survive_arbitrary_input(idp: EmbeddedIdP, live_tokens: dict[str, str]) -> None:
    session = requests.Session()

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=requests_to_endpoints(live_tokens))
    def check(request: dict[str, Any]) -> None:
        before = idp.ledger.events
        response = session.post(
            f"{idp.url}{request['path']}",
            data=request["body"],
            headers=request["headers"],
            timeout=10,
        )
        assert response.status_code < 500, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        after = idp.ledger.events
        if response.status_code >= 400:
            assert body["error"] in RFC_ERRORS
            if after != before:
                # The one rejection that must change the ledger: a spent refresh token
                # presented again ends its family (refresh-token reuse detection).
                assert body["error"] == "invalid_grant"
                presented = [
                    idp.ledger.lookup(fingerprint(v))
                    for name, v in request["pairs"]
                    if name == "refresh_token"
                ]
                assert any(r is not None and r.spent_at is not None for r in presented)
                assert len(after) == len(before) + 1
                assert isinstance(after[-1], Revoked)
                assert after[-1].reason == "refresh token reused"
        elif request["path"] == "/introspect":
            assert after == before
            assert isinstance(body.get("active"), bool)
        else:
            assert len(after) - len(before) in ((0, 1) if request["path"] == "/revoke" else (1,))

    check()
