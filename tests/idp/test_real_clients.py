"""Real client libraries against the embedded IdP: authlib's OAuth2 client and PyJWT's
PyJWKClient, over HTTP on 127.0.0.1."""

from __future__ import annotations

import urllib.parse

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from jwt import PyJWKClient, PyJWKClientError

from jitchaos import ManualClock, fingerprint
from jitchaos.idp import EmbeddedIdP
from tests.common.idp import REDIRECT, authorize, introspect, standard_config, web_session

pytestmark = pytest.mark.usefixtures("insecure_transport")


def validate(idp: EmbeddedIdP, token: str) -> dict[str, object]:
    """What a resource server does: key from the JWKS endpoint, everything pinned."""
    jwks = PyJWKClient(f"{idp.url}/jwks", cache_jwk_set=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims: dict[str, object] = jwt.decode(
        token,
        key,
        algorithms=[idp.keys.algorithm],
        audience=idp.config.audience,
        issuer=idp.issuer,
        options={"require": ["exp", "iat", "nbf", "sub", "jti"]},
    )
    return claims


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials(idp: EmbeddedIdP, method: str) -> None:
    session = OAuth2Session(
        "svc", "svc-secret", scope="read write", token_endpoint_auth_method=method
    )
    token = session.fetch_token(f"{idp.url}/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read write"
    assert "refresh_token" not in token  # RFC 6749 §4.4.3
    claims = validate(idp, token["access_token"])
    assert claims["sub"] == "svc"
    assert claims["client_id"] == "svc"
    assert claims["scope"] == "read write"
    assert claims["exp"] == claims["iat"] + 300  # type: ignore[operator]
    assert len(idp.ledger.grants) == 1


def test_authlib_authorization_code_with_pkce_and_refresh(idp: EmbeddedIdP) -> None:
    session = web_session()
    token = authorize(idp, session, "alice")
    assert validate(idp, token["access_token"])["sub"] == "alice"
    id_claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert id_claims["aud"] == "web"
    assert id_claims["sub"] == "alice"

    refreshed = session.refresh_token(f"{idp.url}/token", refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]  # rotation
    assert validate(idp, refreshed["access_token"])["sub"] == "alice"
    # The spent refresh token introspects inactive; the new one is a refresh token.
    assert introspect(idp, token["refresh_token"]) == {"active": False}
    assert introspect(idp, refreshed["refresh_token"])["token_type"] == "refresh_token"
    userinfo = session.get(f"{idp.url}/userinfo")
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == "alice"


def test_authlib_public_client_with_pkce(idp: EmbeddedIdP) -> None:
    session = OAuth2Session(
        "spa",
        None,
        scope="openid read",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    token = authorize(idp, session, "bob")
    assert token["scope"] == "openid read"
    refreshed = session.refresh_token(f"{idp.url}/token", refresh_token=token["refresh_token"])
    assert validate(idp, refreshed["access_token"])["sub"] == "bob"


def test_authlib_refresh_narrowed_scope(idp: EmbeddedIdP) -> None:
    session = web_session()
    token = authorize(idp, session, "alice")
    narrowed = session.refresh_token(
        f"{idp.url}/token", refresh_token=token["refresh_token"], scope="read"
    )
    assert narrowed["scope"] == "read"
    assert validate(idp, narrowed["access_token"])["scope"] == "read"


def test_pyjwkclient_follows_rotation_and_removal(idp: EmbeddedIdP) -> None:
    session = OAuth2Session("svc", "svc-secret", scope="read")
    old = session.fetch_token(f"{idp.url}/token", grant_type="client_credentials")
    old_kid = idp.keys.current.kid

    new_key = idp.rotate_keys()
    new = session.fetch_token(f"{idp.url}/token", grant_type="client_credentials")
    assert jwt.get_unverified_header(new["access_token"])["kid"] == new_key.kid != old_kid
    # Both verify: the old key is still published after rotate().
    validate(idp, old["access_token"])
    validate(idp, new["access_token"])

    idp.remove_key(old_kid)
    with pytest.raises(PyJWKClientError, match="Unable to find a signing key"):
        validate(idp, old["access_token"])
    validate(idp, new["access_token"])
    assert introspect(idp, old["access_token"]) == {"active": False}
    record = idp.ledger.lookup(fingerprint(old["access_token"]))
    assert record is not None
    assert record.withdrawn_at is not None


def test_es256_ring_validates_through_jwks() -> None:
    config = standard_config(algorithm="ES256")
    with EmbeddedIdP(config, clock=ManualClock()).in_thread() as idp:
        session = OAuth2Session("svc", "svc-secret", scope="read")
        token = session.fetch_token(f"{idp.url}/token", grant_type="client_credentials")
        assert jwt.get_unverified_header(token["access_token"])["alg"] == "ES256"
        assert validate(idp, token["access_token"])["scope"] == "read"


def test_discovery_points_at_the_served_endpoints(idp: EmbeddedIdP) -> None:
    metadata = requests.get(idp.discovery_url, timeout=10).json()
    assert metadata["issuer"] == idp.issuer
    for name in (
        "token_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
        "authorization_endpoint",
    ):
        url = urllib.parse.urlsplit(metadata[name])
        assert f"{url.scheme}://{url.netloc}" == idp.url
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
    assert [k["kid"] for k in jwks["keys"]] == [idp.keys.current.kid]
    assert all("d" not in key for key in jwks["keys"])  # never the private half
