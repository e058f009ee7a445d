"""Re-signing mode in front of an independent IdP whose keys the proxy does not hold, and a
real upstream with opaque tokens, read and changed through introspection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
import requests
from aiohttp import web

from jitchaos import KeyRing, ManualClock, fingerprint
from jitchaos.faults import Expire, Narrow, RotateKeys
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ChaosProxy
from tests.common.idp import client_credentials, introspect, standard_config, user_tokens
from tests.common.service import ResourceService, served


@pytest.fixture
def upstream(clock: ManualClock) -> Iterator[EmbeddedIdP]:
    """A second IdP, reached only by URL: the proxy never sees its keys."""
    with EmbeddedIdP(standard_config(), clock=clock).in_thread() as other:
        yield other


@pytest.fixture
def resigning(upstream: EmbeddedIdP, clock: ManualClock) -> Iterator[tuple[ChaosProxy, str]]:
    with (
        ResourceService("jwt").in_thread() as service,
        ChaosProxy(
            upstream.url, services={"api": service.url}, resign=True, clock=clock
        ).in_thread() as proxy,
    ):
        service.point_at(proxy.url, issuer=upstream.issuer)
        yield proxy, proxy.service_url("api")


def status(service_url: str, token: str, path: str = "/read") -> int:
    return requests.request(
        "POST" if path == "/write" else "GET",
        service_url + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).status_code


def test_tokens_are_reminted_with_the_proxys_key(
    resigning: tuple[ChaosProxy, str], upstream: EmbeddedIdP
) -> None:
    proxy, service = resigning
    tokens = user_tokens(proxy)
    access = tokens["access_token"]
    header = jwt.get_unverified_header(access)
    assert proxy.keys is not None
    assert header["kid"] == proxy.keys.current.kid
    assert header["kid"] not in {k.kid for k in upstream.keys.keys}
    assert header["typ"] == "at+jwt"
    ours = jwt.PyJWKClient(f"{proxy.url}/jwks").get_signing_key_from_jwt(access)
    body = jwt.decode(access, ours, algorithms=["RS256"], audience="jitchaos")
    assert body["iss"] == upstream.issuer
    assert body["sub"] == "alice"
    assert body["scope"] == "openid read write"
    with pytest.raises(jwt.PyJWKClientError):  # the upstream never signed this
        jwt.PyJWKClient(f"{upstream.url}/jwks").get_signing_key_from_jwt(access)
    # The ID token is re-signed too, so OIDC clients verify it against the proxy's JWKS.
    assert jwt.get_unverified_header(tokens["id_token"])["kid"] == proxy.keys.current.kid
    discovery = requests.get(proxy.discovery_url, timeout=10).json()
    assert discovery["jwks_uri"] == f"{proxy.url}/jwks"
    assert requests.get(discovery["jwks_uri"], timeout=10).json() == proxy.keys.jwks()
    assert status(service, access) == 200


def test_introspection_and_revocation_reach_the_upstream_with_its_own_token(
    resigning: tuple[ChaosProxy, str], upstream: EmbeddedIdP
) -> None:
    proxy, _ = resigning
    token = client_credentials(proxy, "read")["access_token"]
    seen = introspect(proxy, token)
    assert seen["active"] is True
    assert seen["scope"] == "read"
    requests.post(
        f"{proxy.url}/revoke", data={"token": token}, auth=("svc", "svc-secret"), timeout=10
    ).raise_for_status()
    assert [type(e).__name__ for e in upstream.ledger.events] == ["Granted", "Revoked"]
    assert introspect(proxy, token) == {"active": False}


def test_originals_of_tokens_expired_an_hour_are_forgotten(
    resigning: tuple[ChaosProxy, str], clock: ManualClock
) -> None:
    """A proxy re-minting for days must not keep every upstream token it ever saw."""
    proxy, _ = resigning
    old = [client_credentials(proxy, "read")["access_token"] for _ in range(5)]
    assert introspect(proxy, old[0])["active"] is True
    clock.advance(4 * 3600)  # past every one's exp, and an hour more
    fresh = client_credentials(proxy, "read")["access_token"]
    assert len(proxy.idp_side._upstream_token) == 1  # only the fresh one's original is kept
    assert introspect(proxy, fresh)["active"] is True  # still mapped to its upstream token


def test_originals_are_kept_by_the_proxys_clock_not_the_upstreams(
    upstream: EmbeddedIdP,
) -> None:
    """The proxy's clock may be hours ahead of an upstream's exp (a test moved it): the
    original is kept for the token's life on the proxy's clock, plus an hour."""
    ahead = ManualClock()
    ahead.advance(10 * 3600)
    with ChaosProxy(upstream.url, resign=True, clock=ahead).in_thread() as proxy:
        client_credentials(proxy, "read")
        assert len(proxy.idp_side._upstream_token) == 1  # was forgotten the moment it was noted


def test_narrowing_and_rotation_act_on_the_proxys_tokens(
    resigning: tuple[ChaosProxy, str],
) -> None:
    proxy, service = resigning
    proxy.apply(Narrow(scopes=frozenset({"read"})))
    narrowed = client_credentials(proxy, "read write")["access_token"]
    assert status(service, narrowed, "/read") == 200
    assert status(service, narrowed, "/write") == 403
    proxy.apply(RotateKeys(mode="remove-old"))
    fresh = client_credentials(proxy, "read write")["access_token"]
    assert status(service, fresh, "/write") == 200  # PyJWKClient followed the new kid
    assert status(service, narrowed, "/read") == 401  # its key is gone


def test_a_token_the_upstream_did_not_sign_is_never_laundered(clock: ManualClock) -> None:
    published, rogue = KeyRing(), KeyRing()

    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {"issuer": base, "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks"}
        )

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(published.jwks())

    async def token(request: web.Request) -> web.Response:
        key = rogue.current
        now = int(time.time())
        signed = jwt.encode(
            {"iss": f"http://{request.host}", "sub": "mallory", "iat": now, "exp": now + 60},
            key.private_key,
            algorithm="RS256",
            headers={"kid": published.current.kid},  # claims a published kid
        )
        return web.json_response({"access_token": signed, "token_type": "Bearer"})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)
    with served(app) as url, ChaosProxy(url, resign=True, clock=clock).in_thread() as proxy:
        answer = requests.post(
            f"{proxy.url}/token", data={"grant_type": "client_credentials"}, timeout=10
        )
        assert answer.status_code == 502
        assert "failed verification" in answer.json()["error_description"]
        assert "access_token" not in answer.text
        assert proxy.ledger.events == ()


def test_without_keys_claim_changes_are_skipped_with_the_reason(
    upstream: EmbeddedIdP, clock: ManualClock
) -> None:
    with ChaosProxy(upstream.url, clock=clock).in_thread() as proxy:
        proxy.apply(Narrow(scopes=frozenset({"read"})))
        token = client_credentials(proxy, "read write")
        assert token["scope"] == "read write"  # untouched: it would no longer verify
        _scheduled, skipped = proxy.history.faults
        assert not skipped.applied
        assert "use --resign" in skipped.detail
        rotated = proxy.apply(RotateKeys())
        assert not rotated.applied
        assert "needs the signing keys" in rotated.detail
        # The ledger still follows what the upstream issued.
        (grant,) = proxy.ledger.grants
        assert grant.scopes == {"read", "write"}


def test_opaque_upstream_tokens_are_read_and_changed_through_introspection(
    clock: ManualClock,
) -> None:
    config = standard_config(opaque_tokens=True)
    with (
        EmbeddedIdP(config, clock=clock).in_thread() as opaque,
        ResourceService("introspect").in_thread() as service,
        ChaosProxy(opaque.url, services={"api": service.url}, clock=clock).in_thread() as proxy,
    ):
        service.point_at(proxy.url, issuer=opaque.issuer)
        proxy.apply(Expire(issued_ttl=5))
        issued = client_credentials(proxy, "read")
        token = issued["access_token"]
        assert token.count(".") == 0  # opaque
        assert issued["expires_in"] == 5
        (grant,) = proxy.ledger.grants
        assert str(grant.principal) == "client:svc"
        record = proxy.ledger.lookup(fingerprint(token))
        assert record is not None
        assert record.token.expires_at - record.token.issued_at == 5
        assert status(proxy.service_url("api"), token) == 200
        clock.advance(5)
        assert status(proxy.service_url("api"), token) == 401  # the upstream says 300 s
        assert introspect(opaque, token)["active"] is True


def test_narrowing_drops_roles_and_groups(clock: ManualClock) -> None:
    """An upstream that puts roles and groups in its tokens (as Keycloak or Entra do)."""
    keys = KeyRing("ES256")

    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {"issuer": base, "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks"}
        )

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(keys.jwks())

    async def token(request: web.Request) -> web.Response:
        now = int(time.time())
        claims = {
            "iss": f"http://{request.host}",
            "sub": "alice",
            "aud": "jitchaos",
            "iat": now,
            "exp": now + 300,
            "scp": ["read", "write"],
            "roles": ["admin"],
            "groups": ["ops"],
            "realm_access": {"roles": ["admin"]},
        }
        signed = jwt.encode(
            claims, keys.current.private_key, algorithm="ES256", headers={"kid": keys.current.kid}
        )
        return web.json_response({"access_token": signed, "token_type": "Bearer"})

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)
    with served(app) as url, ChaosProxy(url, resign=True, clock=clock).in_thread() as proxy:

        def issue() -> dict[str, object]:
            answer = requests.post(
                f"{proxy.url}/token", data={"grant_type": "authorization_code"}, timeout=10
            )
            return dict(
                jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
            )

        plain = issue()
        assert plain["roles"] == ["admin"]
        assert plain["scp"] == ["read", "write"]
        proxy.apply(Narrow(scopes=frozenset({"read"})))
        narrowed = issue()
        assert narrowed["scp"] == ["read"]
        for claim in ("roles", "groups", "realm_access"):
            assert claim not in narrowed
        assert narrowed["sub"] == "alice"


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
@pytest.mark.parametrize("typ", [None, "at+jwt", "JWT", ""])
def test_sign_compact_writes_what_jwt_encode_writes(algorithm: str, typ: str | None) -> None:
    from jitchaos._keys import SigningKey
    from jitchaos.proxy._jose import sign_compact

    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    claims = {"iss": "http://idp", "sub": "é", "scope": "read", "n": [1, {"a": None}], "exp": 9}
    minted = sign_compact(claims, key, typ=typ)
    headers = {"kid": key.kid} if typ is None else {"kid": key.kid, "typ": typ}
    expected = jwt.encode(claims, key.private_key, algorithm=algorithm, headers=headers)
    if algorithm == "RS256":  # deterministic signatures: the same token, byte for byte
        assert minted == expected
    else:
        assert minted.split(".")[:2] == expected.split(".")[:2]
    decoded = jwt.decode(
        minted, key.private_key.public_key(), algorithms=[algorithm], options={"verify_exp": False}
    )
    assert decoded == claims
    with pytest.raises(TypeError, match="Issuer"):
        sign_compact({**claims, "iss": 1}, key, typ=typ)


def test_parse_compact_reads_what_pyjwt_reads_and_refuses_the_rest() -> None:
    from jitchaos._keys import SigningKey
    from jitchaos.proxy._jose import parse_compact

    key = SigningKey.generate("RS256")
    tokens = [
        jwt.encode({"sub": f"u{i}"}, key.private_key, algorithm="RS256", headers={"kid": key.kid})
        for i in range(2)
    ]
    first, second = (parse_compact(token) for token in tokens)
    assert first is not None
    assert second is not None
    assert first.header == jwt.get_unverified_header(tokens[0]) == second.header
    first.header["kid"] = "changed by a caller"  # a header seen before comes back unchanged
    again = parse_compact(tokens[1])
    assert again is not None
    assert again.header["kid"] == key.kid
    assert (first.claims, second.claims) == ({"sub": "u0"}, {"sub": "u1"})
    head, body, signature = tokens[0].split(".")
    for bad in [
        "opaque-token",
        f"{head}.{body}",
        f"{head}+.{body}.{signature}",  # '+' is base64, not base64url
        f"{head}.{body}=.{signature}",
        f"WzFd.{body}.{signature}",  # header [1]: not an object
        f"{head}.WzFd.{signature}",  # claims [1]
    ]:
        assert parse_compact(bad) is None, bad
