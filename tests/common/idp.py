"""A standard embedded-IdP configuration and small HTTP helpers for the tests."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from typing import Any, Protocol

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from jitchaos.idp import ClientConfig, IdPConfig, UserConfig

SERVICE = ClientConfig("svc", "svc-secret", {"read", "write", "admin"})
WEB = ClientConfig("web", "web-secret", {"openid", "read", "write"})
SPA = ClientConfig("spa", None, {"openid", "read"})
RESOURCE = ClientConfig("api", "api-secret", set())  # a resource server that introspects
ALICE = UserConfig("alice", {"read", "write"})
BOB = UserConfig("bob", {"read"})
REDIRECT = "http://127.0.0.1:8765/callback"


class Served(Protocol):
    """Anything with a base URL to send IdP requests to: the embedded IdP or the proxy."""

    @property
    def url(self) -> str: ...


def standard_config(**overrides: Any) -> IdPConfig:
    settings: dict[str, Any] = {"clients": [SERVICE, WEB, SPA, RESOURCE], "users": [ALICE, BOB]}
    settings.update(overrides)
    return IdPConfig(**settings)


def client_credentials(idp: Served, scope: str | None = None, **extra: str) -> dict[str, Any]:
    data = {"grant_type": "client_credentials", **extra}
    if scope is not None:
        data["scope"] = scope
    response = requests.post(f"{idp.url}/token", data=data, auth=("svc", "svc-secret"), timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_tokens(
    idp: Served,
    user: str = "alice",
    scope: str = "openid read write",
    client: ClientConfig = WEB,
) -> dict[str, Any]:
    """Authorization code + PKCE by hand (the authlib tests do it with a real client)."""
    verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": user,
    }
    response = requests.get(
        f"{idp.url}/authorize", params=query, allow_redirects=False, timeout=10
    )
    assert response.status_code == 302, response.text
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)
    data = {
        "grant_type": "authorization_code",
        "code": code["code"][0],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": client.client_id,
    }
    auth = (client.client_id, client.secret) if client.secret else None
    response = requests.post(f"{idp.url}/token", data=data, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def refresh(
    idp: Served, refresh_token: str, client: ClientConfig = WEB, **extra: str
) -> requests.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    auth = (client.client_id, client.secret) if client.secret else None
    if auth is None:
        data["client_id"] = client.client_id
    return requests.post(f"{idp.url}/token", data=data, auth=auth, timeout=10)


def introspect(idp: Served, token: str, **extra: str) -> dict[str, Any]:
    response = requests.post(
        f"{idp.url}/introspect",
        data={"token": token, **extra},
        auth=("api", "api-secret"),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def authorize(idp: Served, session: OAuth2Session, user: str) -> dict[str, Any]:
    verifier = generate_token(64)
    url, _state = session.create_authorization_url(
        f"{idp.url}/authorize", code_verifier=verifier, login_hint=user
    )
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    return dict(
        session.fetch_token(
            f"{idp.url}/token", authorization_response=location, code_verifier=verifier
        )
    )


def web_session() -> OAuth2Session:
    """The confidential web client, asking for a user's openid, read and write."""
    return OAuth2Session(
        "web",
        "web-secret",
        scope="openid read write",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )


def live_tokens(idp: Served) -> dict[str, str]:
    """One token of each kind from ``idp``: a service token, a user's access, rotated refresh,
    spent refresh and ID tokens (what the bad-input tests mangle)."""
    user = user_tokens(idp)
    spent = user["refresh_token"]
    rotated = refresh(idp, spent).json()
    return {
        "service": client_credentials(idp, "read")["access_token"],
        "user_access": user["access_token"],
        "user_refresh": rotated["refresh_token"],
        "spent_refresh": spent,
        "id_token": user["id_token"],
    }
