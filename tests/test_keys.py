from __future__ import annotations

import jwt
import pytest

from jitchaos import ConfigError, InvalidArgument, KeyRing, SigningKey


@pytest.mark.parametrize(("algorithm", "kty"), [("RS256", "RSA"), ("ES256", "EC")])
def test_jwks_publishes_public_keys_only(algorithm: str, kty: str) -> None:
    ring = KeyRing(algorithm)  # type: ignore[arg-type]
    (jwk,) = ring.jwks()["keys"]
    assert jwk["kty"] == kty
    assert jwk["alg"] == algorithm
    assert jwk["use"] == "sig"
    assert jwk["kid"] == ring.current.kid
    assert "d" not in jwk
    assert "p" not in jwk
    # The JWK is usable by PyJWT, and verifies what the private key signs.
    token = jwt.encode({"x": 1}, ring.current.private_key, algorithm=algorithm)
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[algorithm]) == {"x": 1}


def test_keys_are_generated_per_ring() -> None:
    assert KeyRing().current.kid != KeyRing().current.kid


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638 §3.1's worked example.
    from jitchaos._keys import _thumbprint

    example = {
        "kty": "RSA",
        "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
        "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
        "65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qN"
        "Lyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awap"
        "JzKnqDKgw",
    }
    assert _thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rotate_keeps_old_keys_published() -> None:
    ring = KeyRing()
    first = ring.current
    second = ring.rotate()
    assert ring.current is second
    assert [k["kid"] for k in ring.jwks()["keys"]] == [first.kid, second.kid]
    assert ring.get(first.kid) is first


def test_rotate_may_change_algorithm() -> None:
    ring = KeyRing()
    assert ring.rotate("ES256").algorithm == ring.algorithm == "ES256"


def test_remove() -> None:
    ring = KeyRing()
    first = ring.current
    ring.rotate()
    assert ring.remove(first.kid) is first
    assert ring.get(first.kid) is None
    assert len(ring.jwks()["keys"]) == 1


def test_remove_refuses_unknown_and_current() -> None:
    ring = KeyRing()
    with pytest.raises(InvalidArgument, match="names no published key"):
        ring.remove("nope")
    with pytest.raises(InvalidArgument, match="current signing key"):
        ring.remove(ring.current.kid)
    assert len(ring.keys) == 1


def test_unknown_algorithm() -> None:
    with pytest.raises(ConfigError, match="HS256"):
        SigningKey.generate("HS256")  # type: ignore[arg-type]


def test_private_key_stays_out_of_repr() -> None:
    key = KeyRing().current
    assert "private" not in repr(key)
    assert key.kid in repr(key)


def test_rekey_keeps_the_kid_but_old_signatures_fail() -> None:
    ring = KeyRing()
    old = ring.current
    signed = jwt.encode({"sub": "x"}, old.private_key, algorithm="RS256")
    new = ring.rekey()
    assert new.kid == old.kid
    assert ring.current is new
    assert [k.kid for k in ring.keys] == [old.kid]
    public = jwt.PyJWK(ring.jwks()["keys"][0]).key
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(signed, public, algorithms=["RS256"])
    resigned = jwt.encode({"sub": "x"}, new.private_key, algorithm="RS256")
    assert jwt.decode(resigned, public, algorithms=["RS256"]) == {"sub": "x"}


def test_rotations_take_their_keys_from_the_source() -> None:
    spares = [SigningKey.generate("ES256") for _ in range(2)]
    asked: list[str] = []

    def source(algorithm: str) -> SigningKey:
        asked.append(algorithm)
        return spares.pop(0)

    ring = KeyRing("ES256", source=source)
    first = ring.current
    added = ring.rotate()
    assert ring.current is added
    assert [k.kid for k in ring.keys] == [first.kid, added.kid]
    replaced = ring.rekey()  # the same kid, the next spare key behind it
    assert replaced.kid == added.kid
    assert replaced.private_key is not added.private_key
    assert asked == ["ES256", "ES256"]
    assert spares == []
