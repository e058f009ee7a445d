"""Revocation, refresh-token reuse, narrowing and clock-driven expiry each change what
introspection answers at once, with no sleeping."""

from __future__ import annotations

import requests

from jitchaos import ManualClock, Principal, Revoked, fingerprint
from jitchaos.idp import EmbeddedIdP
from tests.common.idp import SPA, client_credentials, introspect, refresh, user_tokens


def test_active_access_token_introspection(idp: EmbeddedIdP) -> None:
    token = client_credentials(idp, "read write")["access_token"]
    answer = introspect(idp, token, token_type_hint="access_token")
    assert answer["active"] is True
    assert answer["token_type"] == "Bearer"
    assert answer["scope"] == "read write"
    assert answer["client_id"] == answer["sub"] == "svc"
    assert answer["aud"] == "jitchaos"
    assert answer["iss"] == idp.issuer


def test_clock_expiry(idp: EmbeddedIdP, clock: ManualClock) -> None:
    token = client_credentials(idp, "read", ttl="60")["access_token"]
    clock.advance(59)
    assert introspect(idp, token)["active"] is True
    clock.advance(1)
    assert introspect(idp, token) == {"active": False}


def test_revocation_endpoint(idp: EmbeddedIdP) -> None:
    token = client_credentials(idp, "read")["access_token"]
    response = requests.post(
        f"{idp.url}/revoke", data={"token": token}, auth=("svc", "svc-secret"), timeout=10
    )
    assert response.status_code == 200
    assert introspect(idp, token) == {"active": False}
    event = idp.ledger.events[-1]
    assert isinstance(event, Revoked)
    assert event.fingerprints == (fingerprint(token),)
    # Revoking again, or revoking something unknown, is 200 and changes nothing (RFC 7009 §2.2).
    before = idp.ledger.events
    for unknown in (token, "no-such-token"):
        again = requests.post(
            f"{idp.url}/revoke", data={"token": unknown}, auth=("svc", "svc-secret"), timeout=10
        )
        assert again.status_code == 200
    assert idp.ledger.events == before


def test_revoking_a_refresh_token_ends_its_grant(idp: EmbeddedIdP) -> None:
    tokens = user_tokens(idp)
    response = requests.post(
        f"{idp.url}/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=("web", "web-secret"),
        timeout=10,
    )
    assert response.status_code == 200
    assert introspect(idp, tokens["access_token"]) == {"active": False}
    assert refresh(idp, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_client_cannot_revoke_another_clients_token(idp: EmbeddedIdP) -> None:
    token = client_credentials(idp, "read")["access_token"]
    response = requests.post(
        f"{idp.url}/revoke", data={"token": token}, auth=("web", "web-secret"), timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert introspect(idp, token)["active"] is True


def test_refresh_token_reuse_revokes_the_family(idp: EmbeddedIdP) -> None:
    first = user_tokens(idp)
    second = refresh(idp, first["refresh_token"]).json()
    third = refresh(idp, second["refresh_token"]).json()
    assert introspect(idp, third["access_token"])["active"] is True

    reused = refresh(idp, first["refresh_token"])  # an attacker replays the first one
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    for token in (
        first["access_token"],
        second["access_token"],
        third["access_token"],
        third["refresh_token"],
    ):
        assert introspect(idp, token) == {"active": False}
    assert refresh(idp, third["refresh_token"]).json()["error"] == "invalid_grant"
    event = idp.ledger.events[-1]
    assert isinstance(event, Revoked)
    assert event.reason == "refresh token reused"


def test_public_client_refresh_reuse_too(idp: EmbeddedIdP) -> None:
    first = user_tokens(idp, user="bob", scope="read", client=SPA)
    second = refresh(idp, first["refresh_token"], client=SPA).json()
    assert refresh(idp, first["refresh_token"], client=SPA).status_code == 400
    assert introspect(idp, second["access_token"]) == {"active": False}


def test_narrowing_changes_introspection_and_refresh(idp: EmbeddedIdP) -> None:
    tokens = user_tokens(idp, scope="read write")
    grant = idp.ledger.grants[-1]
    idp.ledger.narrow(grant.grant_id, {"read"})
    assert introspect(idp, tokens["access_token"])["scope"] == "read"
    refreshed = refresh(idp, tokens["refresh_token"]).json()
    assert refreshed["scope"] == "read"
    asked_wider = refresh(idp, refreshed["refresh_token"], scope="read write")
    assert asked_wider.json()["error"] == "invalid_scope"


def test_revoking_a_principal(idp: EmbeddedIdP) -> None:
    alice = [user_tokens(idp)["access_token"] for _ in range(2)]
    bob = user_tokens(idp, user="bob", scope="read")["access_token"]
    idp.ledger.revoke(principal=Principal.subject("alice"))
    assert all(introspect(idp, t) == {"active": False} for t in alice)
    assert introspect(idp, bob)["active"] is True


def test_early_expiry(idp: EmbeddedIdP) -> None:
    token = client_credentials(idp, "read")["access_token"]
    idp.ledger.expire(token=fingerprint(token))
    assert introspect(idp, token) == {"active": False}


def test_authorization_code_reuse_revokes_its_grant(idp: EmbeddedIdP) -> None:
    import urllib.parse

    from tests.common.idp import REDIRECT, pkce_pair

    verifier, challenge = pkce_pair()
    location = requests.get(
        f"{idp.url}/authorize",
        params={
            "response_type": "code",
            "client_id": "web",
            "redirect_uri": REDIRECT,
            "scope": "read",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "login_hint": "alice",
        },
        allow_redirects=False,
        timeout=10,
    ).headers["Location"]
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    first = requests.post(f"{idp.url}/token", data=data, auth=("web", "web-secret"), timeout=10)
    assert first.status_code == 200
    second = requests.post(f"{idp.url}/token", data=data, auth=("web", "web-secret"), timeout=10)
    assert second.json()["error"] == "invalid_grant"
    assert introspect(idp, first.json()["access_token"]) == {"active": False}


def test_userinfo_follows_revocation(idp: EmbeddedIdP) -> None:
    token = user_tokens(idp)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{idp.url}/userinfo", headers=headers, timeout=10).status_code == 200
    idp.ledger.revoke(token=fingerprint(token))
    response = requests.get(f"{idp.url}/userinfo", headers=headers, timeout=10)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    service = client_credentials(idp, "read")["access_token"]
    response = requests.get(
        f"{idp.url}/userinfo", headers={"Authorization": f"Bearer {service}"}, timeout=10
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
