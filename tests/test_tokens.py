from __future__ import annotations

from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitchaos import InvalidToken, KeyRing, fingerprint, mint_access_token, verify_access_token
from jitchaos._tokens import mint_id_token
from jitchaos.errors import InvalidArgument
from jitchaos.strategies import claims

RING = KeyRing()


def mint(**overrides: object) -> str:
    settings: dict[str, object] = dict(
        issuer="https://idp",
        audience="api",
        subject="alice",
        client_id="web",
        scopes={"read", "write"},
        issued_at=1000,
        expires_at=1300,
    )
    settings.update(overrides)
    return mint_access_token(RING.current, **settings)  # type: ignore[arg-type]


def verify(token: str, now: float = 1100, **overrides: Any) -> dict[str, object]:
    settings: dict[str, object] = dict(issuer="https://idp", audience="api", now=now)
    settings.update(overrides)
    return verify_access_token(token, RING, **settings)  # type: ignore[arg-type]


def test_round_trip_carries_every_rfc9068_claim() -> None:
    claims = verify(mint())
    assert {
        k: claims[k] for k in ("iss", "sub", "aud", "client_id", "scope", "iat", "nbf", "exp")
    } == {
        "iss": "https://idp",
        "sub": "alice",
        "aud": "api",
        "client_id": "web",
        "scope": "read write",
        "iat": 1000,
        "nbf": 1000,
        "exp": 1300,
    }
    assert isinstance(claims["jti"], str)
    assert claims["jti"]
    assert jwt.get_unverified_header(mint())["typ"] == "at+jwt"


def test_expiry_follows_the_given_time() -> None:
    token = mint()
    verify(token, now=1299.9)
    with pytest.raises(InvalidToken, match="expired"):
        verify(token, now=1300)
    verify(token, now=1300, leeway=5)
    with pytest.raises(InvalidToken, match="not valid before"):
        verify(token, now=999)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"issuer": "https://other"}, "issuer"),
        ({"audience": "other"}, "(?i)audience"),
    ],
)
def test_wrong_issuer_or_audience(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidToken, match=match):
        verify(mint(), **overrides)


def test_tampered_payload_fails() -> None:
    header, _payload, signature = mint().split(".")
    other = mint(subject="mallory").split(".")[1]
    with pytest.raises(InvalidToken, match="Signature"):
        verify(f"{header}.{other}.{signature}")


def test_unknown_kid_and_garbage() -> None:
    with pytest.raises(InvalidToken, match="kid"):
        verify(
            mint_access_token(
                KeyRing().current,
                issuer="https://idp",
                audience="api",
                subject="s",
                client_id="c",
                scopes=(),
                issued_at=1000,
                expires_at=1300,
            )
        )
    with pytest.raises(InvalidToken, match="not a JWS"):
        verify("not-a-token")


def test_id_token_is_not_an_access_token() -> None:
    token = mint_id_token(
        RING.current,
        issuer="https://idp",
        client_id="api",
        subject="alice",
        issued_at=1000,
        expires_at=1300,
    )
    with pytest.raises(InvalidToken, match="typ"):
        verify(token)


@given(
    claims(
        issuers=st.just("https://idp"), audiences=st.just("api"), issued_at=st.integers(0, 10**9)
    )
)
def test_minted_claims_survive_verification(drawn: dict[str, object]) -> None:
    token = mint(
        subject=drawn["sub"],
        client_id=drawn["client_id"],
        scopes=str(drawn.get("scope", "")).split(),
        issued_at=drawn["iat"],
        expires_at=drawn["exp"],
    )
    got = verify(token, now=drawn["iat"])  # type: ignore[arg-type]
    assert got.get("scope") == drawn.get("scope")
    assert got["exp"] == drawn["exp"]


def test_fingerprint_is_stable_short_and_not_the_token() -> None:
    token = mint()
    assert fingerprint(token) == fingerprint(token)
    assert len(fingerprint(token)) == 16
    assert fingerprint(token) not in token
    assert fingerprint(token) != fingerprint(token + "x")


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"now": float("nan")}, "now=nan must be a finite number"),
        ({"now": None}, "now=None must be a finite number"),
        ({"now": True}, "now=True must be a finite number"),
        ({"leeway": float("nan")}, "leeway=nan must be a finite number >= 0"),
        ({"leeway": float("inf")}, "leeway=inf must be a finite number >= 0"),
        ({"leeway": -1}, "leeway=-1 must be a finite number >= 0"),
        ({"max_lifetime": float("nan")}, "max_lifetime=nan"),
        ({"max_lifetime": "x"}, "max_lifetime='x'"),
        ({"known_scopes": "read"}, "known_scopes='read' must be a collection"),
        ({"known_scopes": 5}, "known_scopes=5 must be a collection"),
    ],
)
def test_bad_arguments_never_let_an_expired_token_through(
    overrides: dict[str, Any], names: str
) -> None:
    """A NaN time compares false with everything: unchecked, it passed every expiry check."""
    expired = mint(issued_at=1000, expires_at=1005)
    with pytest.raises(InvalidArgument) as caught:
        verify(expired, **{"now": 5000, **overrides})
    assert names in str(caught.value)


def test_bad_keys_and_tokens_are_named() -> None:
    with pytest.raises(InvalidArgument, match="keys=None must be a KeyRing"):
        verify_access_token(mint(), None, issuer="https://idp", audience="api", now=1100)  # type: ignore[arg-type]
    with pytest.raises(InvalidToken, match="not a JWS compact token: NoneType"):
        verify(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="token to fingerprint is a str, not NoneType"):
        fingerprint(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"scopes": "read"}, "scopes='read' must be a collection of scope names, not a str"),
        ({"issued_at": 1000.5}, "issued_at=1000.5 must be a whole NumericDate"),
        ({"expires_at": float("inf")}, "expires_at=inf must be a whole NumericDate"),
        ({"expires_at": 900}, "expires_at=900 must be after issued_at=1000"),
    ],
)
def test_minting_refuses_what_no_valid_token_holds(overrides: dict[str, Any], names: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        mint(**overrides)
    assert names in str(caught.value)


def test_any_real_number_is_a_time() -> None:
    from decimal import Decimal
    from fractions import Fraction

    token = mint(issued_at=1000, expires_at=1300)
    for now in (Fraction(1100), Decimal("1100.5")):
        assert verify(token, now=now)["sub"] == "alice"  # type: ignore[arg-type]
    assert verify(token, known_scopes=iter(["read", "write"]))["sub"] == "alice"
