"""Each RFC 6749 §5.2 error the token endpoint gives, with its status, as JSON."""

from __future__ import annotations

import base64

import pytest
import requests

from jitchaos.idp import EmbeddedIdP
from tests.common.idp import REDIRECT, pkce_pair, user_tokens

CASES = [
    # (data, auth, status, error)
    ({"grant_type": "client_credentials"}, ("svc", "wrong"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, ("nobody", "x"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "client_id": "svc"}, None, 401, "invalid_client"),
    (
        {"grant_type": "client_credentials", "client_id": "svc", "client_secret": "svc-secret"},
        ("svc", "svc-secret"),
        400,
        "invalid_request",
    ),
    ({"grant_type": "password"}, ("svc", "svc-secret"), 400, "unsupported_grant_type"),
    ({}, ("svc", "svc-secret"), 400, "invalid_request"),
    (
        {"grant_type": "client_credentials", "scope": "read delete"},
        ("svc", "svc-secret"),
        400,
        "invalid_scope",
    ),
    (
        {"grant_type": "client_credentials", "scope": 'bad"scope'},
        ("svc", "svc-secret"),
        400,
        "invalid_scope",
    ),
    (
        {"grant_type": "client_credentials", "ttl": "0"},
        ("svc", "svc-secret"),
        400,
        "invalid_request",
    ),
    (
        {"grant_type": "client_credentials", "ttl": "999999"},
        ("svc", "svc-secret"),
        400,
        "invalid_request",
    ),
    ({"grant_type": "client_credentials", "client_id": "spa"}, None, 400, "unauthorized_client"),
    (
        {"grant_type": "refresh_token", "refresh_token": "bogus"},
        ("web", "web-secret"),
        400,
        "invalid_grant",
    ),
    ({"grant_type": "refresh_token"}, ("web", "web-secret"), 400, "invalid_request"),
    (
        {"grant_type": "authorization_code", "code": "bogus", "code_verifier": "x" * 43},
        ("web", "web-secret"),
        400,
        "invalid_grant",
    ),
]


@pytest.mark.parametrize(("data", "auth", "status", "error"), CASES)
def test_token_endpoint_errors(
    idp: EmbeddedIdP, data: dict[str, str], auth: tuple[str, str] | None, status: int, error: str
) -> None:
    before = idp.ledger.events
    response = requests.post(f"{idp.url}/token", data=data, auth=auth, timeout=10)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert idp.ledger.events == before


def test_duplicate_parameters_are_refused(idp: EmbeddedIdP) -> None:
    body = "grant_type=client_credentials&scope=read&scope=write"
    response = requests.post(
        f"{idp.url}/token",
        data=body,
        auth=("svc", "svc-secret"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.json()["error"] == "invalid_request"
    assert "more than once" in response.json()["error_description"]


def test_not_a_form_body(idp: EmbeddedIdP) -> None:
    response = requests.post(
        f"{idp.url}/token",
        json={"grant_type": "client_credentials"},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_malformed_basic_credentials(idp: EmbeddedIdP) -> None:
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"):
        response = requests.post(
            f"{idp.url}/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": header},
            timeout=10,
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_unknown_path_and_method_are_json(idp: EmbeddedIdP) -> None:
    missing = requests.get(f"{idp.url}/nope", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = requests.get(f"{idp.url}/token", timeout=10)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "invalid_request"
    assert "POST" in wrong_method.headers["Allow"]


def test_refresh_token_is_not_an_access_token(idp: EmbeddedIdP) -> None:
    tokens = user_tokens(idp)
    response = requests.get(
        f"{idp.url}/userinfo",
        headers={"Authorization": f"Bearer {tokens['refresh_token']}"},
        timeout=10,
    )
    assert response.status_code == 401
    # ... and an access token is not a refresh token.
    response = requests.post(
        f"{idp.url}/token",
        auth=("web", "web-secret"),
        timeout=10,
        data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]},
    )
    assert response.json()["error"] == "invalid_grant"


def test_introspection_needs_a_confidential_client(idp: EmbeddedIdP) -> None:
    tokens = user_tokens(idp)
    for auth, data in (
        (None, {"token": tokens["access_token"]}),
        (None, {"token": tokens["access_token"], "client_id": "spa"}),
        (("api", "wrong"), {"token": tokens["access_token"]}),
    ):
        response = requests.post(f"{idp.url}/introspect", data=data, auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


def test_unsupported_token_type_hint(idp: EmbeddedIdP) -> None:
    response = requests.post(
        f"{idp.url}/revoke",
        data={"token": "x", "token_type_hint": "id"},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert response.json()["error"] == "unsupported_token_type"


class TestAuthorize:
    def get(self, idp: EmbeddedIdP, **params: str) -> requests.Response:
        _verifier, challenge = pkce_pair()
        query = {
            "response_type": "code",
            "client_id": "web",
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": "alice",
            "state": "xyz",
            **params,
        }
        query = {k: v for k, v in query.items() if v != "-"}
        return requests.get(
            f"{idp.url}/authorize", params=query, allow_redirects=False, timeout=10
        )

    def test_unknown_client_is_not_redirected(self, idp: EmbeddedIdP) -> None:
        response = self.get(idp, client_id="nobody")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_non_loopback_redirect_is_not_redirected(self, idp: EmbeddedIdP) -> None:
        response = self.get(idp, redirect_uri="https://evil.example/cb")
        assert response.status_code == 400
        assert "loopback" in response.json()["error_description"]

    @pytest.mark.parametrize(
        ("params", "error"),
        [
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"code_challenge": "-"}, "invalid_request"),
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"login_hint": "mallory"}, "login_required"),
            ({"scope": "admin"}, "invalid_scope"),
            ({"login_hint": "bob", "scope": "write"}, "invalid_scope"),
        ],
    )
    def test_errors_are_redirected_with_state(
        self, idp: EmbeddedIdP, params: dict[str, str], error: str
    ) -> None:
        response = self.get(idp, **params)
        assert response.status_code == 302
        location = response.headers["Location"]
        assert location.startswith(REDIRECT)
        assert f"error={error}" in location
        assert "state=xyz" in location
