"""signing_keys(), tokens(), principals() and grants(): valid values, named bad arguments, and
shrinking towards the simplest token."""

from __future__ import annotations

import re
from typing import Any

import jwt
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from jitchaos import (
    GrantRequest,
    InvalidArgument,
    KeyRing,
    Ledger,
    ManualClock,
    Principal,
    SigningKey,
    TokenKind,
    verify_access_token,
)
from jitchaos.strategies import claims, grants, principals, signing_keys, tokens

RING = KeyRing()
ISSUER, AUDIENCE = "https://idp.example", "api"


@settings(max_examples=50)
@given(signing_keys())
def test_signing_keys_sign_and_verify(key: SigningKey) -> None:
    token = jwt.encode({"x": 1}, key.private_key, algorithm=key.algorithm)
    public = jwt.PyJWK(key.public_jwk()).key
    assert jwt.decode(token, public, algorithms=[key.algorithm]) == {"x": 1}


def test_signing_keys_come_from_a_small_pool() -> None:
    seen: set[str] = set()

    @settings(max_examples=60)
    @given(signing_keys(algorithms=st.just("ES256")))
    def collect(key: SigningKey) -> None:
        assert key.algorithm == "ES256"
        seen.add(key.kid)

    collect()
    assert 1 <= len(seen) <= 3  # generated once per process, not per example


@settings(max_examples=50, deadline=None)
@given(tokens(keys=RING, issuer=ISSUER, audience=AUDIENCE))
def test_tokens_verify_strictly(token: str) -> None:
    body = jwt.decode(token, options={"verify_signature": False})
    claims_ = verify_access_token(token, RING, issuer=ISSUER, audience=AUDIENCE, now=body["iat"])
    assert claims_["iss"] == ISSUER
    assert jwt.get_unverified_header(token)["kid"] == RING.current.kid


def test_tokens_shrink_to_no_optional_claims_and_the_shortest_life() -> None:
    # A property that fails for every token: the reported example is the simplest one.
    token = find(
        tokens(
            keys=RING,
            issuer=ISSUER,
            audience=AUDIENCE,
            claims=claims(issuers=st.just(ISSUER), audiences=st.just(AUDIENCE), min_lifetime=60),
        ),
        lambda t: True,
    )
    body = jwt.decode(token, options={"verify_signature": False})
    assert set(body) == {"iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti"}
    assert body["exp"] - body["iat"] == 60
    assert body["iat"] == 1_600_000_000  # the earliest issue time the strategy draws


def test_tokens_shrink_to_the_simplest_failing_token() -> None:
    # Fails only for tokens carrying "admin": shrinks to exactly that scope, nothing else.
    token = find(
        tokens(keys=RING, issuer=ISSUER, audience=AUDIENCE),
        lambda t: "admin" in str(jwt.decode(t, options={"verify_signature": False}).get("scope")),
        settings=settings(derandomize=True, database=None),  # the same search in every run
    )
    body = jwt.decode(token, options={"verify_signature": False})
    assert body["scope"] == "admin"
    assert "roles" not in body
    assert body["exp"] - body["iat"] == 1


@settings(max_examples=50)
@given(principals())
def test_principals_round_trip(principal: Principal) -> None:
    assert Principal.parse(str(principal)) == principal


def test_principals_shrink_to_a_short_subject() -> None:
    assert str(find(principals(), lambda p: True)) == "subject:0"


@settings(max_examples=50)
@given(grants(max_lifetime=600))
def test_grants_record_in_a_ledger(request: GrantRequest) -> None:
    ledger = Ledger(ManualClock(start=1_000))
    granted = request.record(ledger)
    assert granted.principal == request.principal
    assert granted.scopes == request.scopes
    kinds = [t.kind for t in granted.tokens]
    assert kinds == (
        [TokenKind.ACCESS, TokenKind.REFRESH] if request.refresh else [TokenKind.ACCESS]
    )
    assert granted.tokens[0].expires_at - granted.tokens[0].issued_at == request.lifetime
    # Replaying the same request on a fresh ledger gives the same fingerprints.
    again = request.record(Ledger(ManualClock(start=1_000)))
    assert [t.fingerprint for t in again.tokens] == [t.fingerprint for t in granted.tokens]


def test_grants_shrink() -> None:
    smallest = find(grants(), lambda g: True)
    assert smallest.scopes == frozenset()
    assert smallest.lifetime == 1
    assert not smallest.refresh


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (signing_keys, {"algorithms": ["RS256"]}, "algorithms=['RS256'] must be a strategy"),
        (tokens, {"keys": "ring", "issuer": ISSUER, "audience": AUDIENCE}, "keys='ring'"),
        (tokens, {"keys": RING, "issuer": "", "audience": AUDIENCE}, "issuer=''"),
        (tokens, {"keys": RING, "issuer": ISSUER, "audience": 3}, "audience=3"),
        (tokens, {"keys": RING, "issuer": ISSUER, "audience": "a", "claims": {}}, "claims={}"),
        (principals, {"names": "alice"}, "names='alice'"),
        (grants, {"min_lifetime": 0}, "min_lifetime=0"),
        (grants, {"min_lifetime": 10, "max_lifetime": 5}, "max_lifetime=5"),
        (grants, {"scope_sets": {"read"}}, "scope_sets={'read'}"),
    ],
)
def test_bad_arguments_are_named(factory: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        factory(**kwargs)


def test_bad_drawn_values_are_named() -> None:
    with pytest.raises(InvalidArgument, match="algorithms drew 'HS256'"):
        find(signing_keys(algorithms=st.just("HS256")), lambda k: True)
