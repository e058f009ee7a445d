"""Every document each target serves, checked against the JSON types its specification gives
(tests/interop/schemas.py): what PyJWT lets pass and a strict reader refuses fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import jwt
import pytest
import requests

from tests.common.idp import refresh, user_tokens
from tests.interop import schemas
from tests.interop.targets import TARGETS, Target, running


@pytest.fixture(params=TARGETS, scope="module")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with running(request.param) as started:
        yield started


def conforms(document: object, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: e.path
    )
    assert not errors, "; ".join(
        f"{'/'.join(map(str, error.absolute_path)) or '(document)'}: {error.message}"
        for error in errors
    )


def json_answer(response: requests.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def metadata(target: Target) -> dict[str, Any]:
    return json_answer(requests.get(target.discovery_url, timeout=10))


def service_token(target: Target, **data: str) -> requests.Response:
    return requests.post(
        metadata(target)["token_endpoint"],
        data={"grant_type": "client_credentials", **data},
        auth=("svc", "svc-secret"),
        timeout=10,
    )


def test_discovery(target: Target) -> None:
    document = metadata(target)
    conforms(document, schemas.DISCOVERY)
    assert document["issuer"] == target.issuer
    # RFC 8414 §3: also served at the path-inserted well-known location for the issuer.
    assert json_answer(requests.get(document["jwks_uri"], timeout=10))


def test_jwks_before_and_after_a_rotation(target: Target) -> None:
    jwks_uri = metadata(target)["jwks_uri"]
    before = json_answer(requests.get(jwks_uri, timeout=10))
    conforms(before, schemas.JWKS)
    kid = target.rotate()
    after = json_answer(requests.get(jwks_uri, timeout=10))
    conforms(after, schemas.JWKS)
    assert kid in {key["kid"] for key in after["keys"]}
    assert {key["kid"] for key in before["keys"]} < {key["kid"] for key in after["keys"]}
    for key in after["keys"]:  # every published key is one PyJWT can build
        jwt.PyJWK(key)


def test_token_answers_and_the_tokens_in_them(target: Target) -> None:
    answer = service_token(target, scope="read write")
    assert answer.headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1
    service = json_answer(answer)
    conforms(service, schemas.TOKEN_ANSWER)
    assert "refresh_token" not in service  # RFC 6749 §4.4.3
    user = user_tokens(target)
    conforms(user, schemas.TOKEN_ANSWER)
    refreshed = json_answer(refresh(target, user["refresh_token"]))
    conforms(refreshed, schemas.TOKEN_ANSWER)
    for token in (service["access_token"], user["access_token"], refreshed["access_token"]):
        conforms(jwt.get_unverified_header(token), schemas.ACCESS_TOKEN_HEADER)
        conforms(
            jwt.decode(token, options={"verify_signature": False}), schemas.ACCESS_TOKEN_CLAIMS
        )
    claims = jwt.decode(user["id_token"], options={"verify_signature": False})
    conforms(claims, schemas.ID_TOKEN_CLAIMS)
    assert claims["aud"] == "web"


def test_introspection_answers(target: Target) -> None:
    endpoints = metadata(target)
    token = json_answer(service_token(target, scope="read"))["access_token"]

    def introspect(value: str) -> dict[str, Any]:
        answer = json_answer(
            requests.post(
                endpoints["introspection_endpoint"],
                data={"token": value},
                auth=("api", "api-secret"),
                timeout=10,
            )
        )
        conforms(answer, schemas.INTROSPECTION)
        return answer

    assert introspect(token)["active"] is True
    assert introspect("no-such-token") == {"active": False}
    revoked = requests.post(
        endpoints["revocation_endpoint"],
        data={"token": token},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert revoked.status_code == 200  # RFC 7009 §2.2; the body is ignored by clients
    assert introspect(token) == {"active": False}
    unknown = requests.post(
        endpoints["revocation_endpoint"],
        data={"token": "no-such-token"},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert unknown.status_code == 200  # RFC 7009 §2.2: an invalid token is no error


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        (
            {"grant_type": "client_credentials", "scope": "nope"},
            ("svc", "svc-secret"),
            400,
            "invalid_scope",
        ),
        # A scope quoting what RFC 6749 §5.2 forbids in a description: the answer still fits.
        (
            {"grant_type": "client_credentials", "scope": 'x"y\\z\u00e9'},
            ("svc", "svc-secret"),
            400,
            "invalid_scope",
        ),
        ({"grant_type": "client_credentials"}, ("svc", "wrong"), 401, "invalid_client"),
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            ("svc", "svc-secret"),
            400,
            "unsupported_grant_type",
        ),
        (
            {"grant_type": "refresh_token", "refresh_token": "bogus"},
            ("web", "web-secret"),
            400,
            "invalid_grant",
        ),
        ({"grant_type": "authorization_code"}, ("web", "web-secret"), 400, "invalid_request"),
        ({}, ("svc", "svc-secret"), 400, "invalid_request"),
    ],
)
def test_error_answers(
    target: Target, data: dict[str, str], auth: tuple[str, str], status: int, error: str
) -> None:
    response = requests.post(metadata(target)["token_endpoint"], data=data, auth=auth, timeout=10)
    body = json_answer(response, status)
    conforms(body, schemas.ERROR)
    assert body["error"] == error
    assert body["error"] in schemas.TOKEN_ERRORS
    assert response.headers["Cache-Control"] == "no-store"
    if status == 401:  # RFC 6749 §5.2: the scheme the client authenticated with
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
