"""Every class of the hostile-token catalogue: a strict verifier rejects every generated token,
and a deliberately naive verifier that the class targets accepts some, so the strategy really
generates the attack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from jitchaos import (
    InvalidArgument,
    InvalidToken,
    KeyRing,
    ManualClock,
    mint_access_token,
    verify_access_token,
)
from jitchaos.strategies import (
    ATTACKS,
    FORGERIES,
    HostileToken,
    hostile_tokens,
    temporal_edge_tokens,
)

RING = KeyRing()
ISSUER, AUDIENCE, NOW, LEEWAY = "https://idp.example", "api", 1_800_000_000, 5
CLOCK = ManualClock(start=NOW)  # PyJWT reads the wall clock: the checks run frozen at NOW
KNOWN_SCOPES = {"read", "write", "admin", "openid"}
LEGIT = mint_access_token(
    RING.current,
    issuer=ISSUER,
    audience=AUDIENCE,
    subject="alice",
    client_id="web",
    scopes={"read", "write"},
    issued_at=NOW - 10,
    expires_at=NOW + 290,
)
PUBLIC = RING.current.private_key.public_key()


def strict(token: str, now: float = NOW) -> None:
    """A strict resource server: PyJWT pinned and fully checking, plus RFC 9068."""
    verify_access_token(
        token,
        RING,
        issuer=ISSUER,
        audience=AUDIENCE,
        now=now,
        leeway=LEEWAY,
        max_lifetime=3600,
        known_scopes=KNOWN_SCOPES,
    )


def pyjwt_pinned(token: str) -> dict[str, Any]:
    """PyJWT alone, configured correctly: algorithm pinned, issuer and one audience checked,
    exp/nbf/iat required."""
    return dict(
        jwt.decode(
            token,
            PUBLIC,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["exp", "nbf", "iat", "iss", "aud"], "strict_aud": True},
        )
    )


# The naive verifiers, one kind of mistake each.


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    pieces = token.split(".")

    def unb64(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    signature = unb64(pieces[2]) if len(pieces) > 2 else b""
    return (
        json.loads(unb64(pieces[0])),
        json.loads(unb64(pieces[1])),
        f"{pieces[0]}.{pieces[1]}".encode(),
        signature,
    )


def _rsa_ok(public: Any, signing_input: bytes, signature: bytes) -> bool:
    algorithm = jwt.get_algorithm_by_name("RS256")
    return bool(algorithm.verify(signing_input, public, signature))


def _hmac_ok(
    secret: bytes, header: dict[str, Any], signing_input: bytes, signature: bytes
) -> bool:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    alg = header.get("alg")
    if alg not in digest:
        return False
    return hmac.compare_digest(hmac.new(secret, signing_input, digest[alg]).digest(), signature)


def no_verification(token: str, hostile: HostileToken) -> bool:
    jwt.decode(token, options={"verify_signature": False})
    return True


def accepts_alg_none(token: str, hostile: HostileToken) -> bool:
    header, _, signing_input, signature = _parts(token)
    if str(header.get("alg")).lower() == "none":
        return True
    return _rsa_ok(PUBLIC, signing_input, signature)


def weak_shared_secret(token: str, hostile: HostileToken) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jwt.decode(
            token,
            "secret",
            algorithms=["HS256", "HS384", "HS512"],
            options={"verify_aud": False, "verify_exp": False},
        )
    return True


def public_key_as_any_secret(token: str, hostile: HostileToken) -> bool:
    header, _, signing_input, signature = _parts(token)
    pem = PUBLIC.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if str(header.get("alg", "")).startswith("HS"):  # "the key file" used for any algorithm
        return _hmac_ok(pem, header, signing_input, signature)
    return _rsa_ok(PUBLIC, signing_input, signature)


def trusts_header_jwk(token: str, hostile: HostileToken) -> bool:
    header, _, signing_input, signature = _parts(token)
    return _rsa_ok(jwt.PyJWK(header["jwk"]).key, signing_input, signature)


def follows_jku_and_x5u(token: str, hostile: HostileToken) -> bool:
    header, _, signing_input, signature = _parts(token)
    if "jku" in header:
        (jwk,) = json.loads(hostile.served[header["jku"]])["keys"]
        public = jwt.PyJWK(jwk).key
    else:
        certificate = x509.load_pem_x509_certificate(hostile.served[header["x5u"]].encode())
        public = certificate.public_key()
    return _rsa_ok(public, signing_input, signature)


def kid_as_path_or_sql(keydir: Path) -> Callable[[str, HostileToken], bool]:
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE keys (kid TEXT, secret TEXT)")
    database.execute("INSERT INTO keys VALUES ('legit', 'long-random-secret-nobody-knows')")

    def check(token: str, hostile: HostileToken) -> bool:
        header, _, signing_input, signature = _parts(token)
        kid = str(header.get("kid"))
        path = os.path.join(keydir, kid)  # the naive service does exactly this
        if os.path.isfile(path) or path.startswith("/dev/"):
            with open(path, "rb") as file:
                return _hmac_ok(file.read(), header, signing_input, signature)
        rows = database.execute(f"SELECT secret FROM keys WHERE kid = '{kid}'").fetchall()  # noqa: S608
        return any(_hmac_ok(row[0].encode(), header, signing_input, signature) for row in rows)

    return check


def no_time_checks(token: str, hostile: HostileToken) -> bool:
    jwt.decode(
        token,
        PUBLIC,
        algorithms=["RS256"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    return True


def no_audience_or_issuer_check(token: str, hostile: HostileToken) -> bool:
    jwt.decode(
        token,
        PUBLIC,
        algorithms=["RS256"],
        options={"verify_aud": False, "verify_iss": False, "verify_exp": False},
    )
    return True


def signature_only(token: str, hostile: HostileToken) -> bool:
    jwt.decode(
        token, PUBLIC, algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False}
    )
    return True


def substring_scope_check(token: str, hostile: HostileToken) -> bool:
    claims = pyjwt_pinned(token)
    scope = claims.get("scope", "")
    return "admin" in scope or "*" in scope  # "admin" in a list, a comma string, a wildcard


def ignores_header_parameters(token: str, hostile: HostileToken) -> bool:
    _, _, signing_input, signature = _parts(token)
    return _rsa_ok(PUBLIC, signing_input, signature)


NAIVE: dict[str, Callable[[Path], Callable[[str, HostileToken], bool]]] = {
    "alg-none": lambda _: accepts_alg_none,
    "stripped-signature": lambda _: no_verification,
    "edited-payload": lambda _: no_verification,
    "weak-hmac": lambda _: weak_shared_secret,
    "key-confusion": lambda _: public_key_as_any_secret,
    "embedded-jwk": lambda _: trusts_header_jwk,
    "jku-x5u": lambda _: follows_jku_and_x5u,
    "kid-injection": kid_as_path_or_sql,
    "temporal-edge": lambda _: no_time_checks,
    "audience-issuer-confusion": lambda _: no_audience_or_issuer_check,
    "token-type-confusion": lambda _: signature_only,
    "scope-shape": lambda _: substring_scope_check,
    "header-oddity": lambda _: ignores_header_parameters,
}
# What PyJWT's own options cannot see, and the RFC 9068 profile of verify_access_token does:
# the scope's shape, a maximum lifetime, the typ and cty headers.
BEYOND_PYJWT = {"scope-shape"}
BEYOND_PYJWT_VARIANTS = ("absurdly long life", "typ ", "cty ")


def test_the_catalogue_is_closed() -> None:
    assert set(NAIVE) == set(ATTACKS)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_strict_rejects_all_and_naive_accepts_some(attack: str, tmp_path: Path) -> None:
    naive = NAIVE[attack](tmp_path)
    accepted: list[str] = []
    if attack == "temporal-edge":
        strategy = temporal_edge_tokens(legitimate=LEGIT, keys=RING, now=NOW, leeway=LEEWAY)
    else:
        strategy = ATTACKS[attack](legitimate=LEGIT, keys=RING)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=True,  # "accepts some" must not hang on the luck of one run
        database=None,
    )
    @given(strategy)
    def check(hostile: HostileToken) -> None:
        assert hostile.attack == attack
        assert hostile.token != LEGIT
        with pytest.raises(InvalidToken):
            strict(hostile.token)
        if attack not in BEYOND_PYJWT and not any(
            v in hostile.variant for v in BEYOND_PYJWT_VARIANTS
        ):
            with pytest.raises(jwt.PyJWTError):
                pyjwt_pinned(hostile.token)
        try:
            if naive(hostile.token, hostile):
                accepted.append(hostile.variant)
        except (jwt.PyJWTError, ValueError, KeyError, TypeError, OSError, sqlite3.Error):
            pass

    with CLOCK.freeze():
        check()
    assert accepted, f"no {attack} token fooled {NAIVE[attack].__name__}"


def test_the_legitimate_token_passes_both() -> None:
    strict(LEGIT)
    with CLOCK.freeze():
        assert pyjwt_pinned(LEGIT)["sub"] == "alice"


@settings(max_examples=100, deadline=None)
@given(hostile_tokens(legitimate=LEGIT, keys=RING))
def test_union_names_its_class_and_hides_the_token_in_repr(hostile: HostileToken) -> None:
    assert hostile.attack in ATTACKS
    assert hostile.token not in repr(hostile)
    assert hostile.attack in repr(hostile)


@settings(max_examples=30)
@given(
    hostile_tokens(legitimate=LEGIT, keys=RING, attacks=st.sampled_from(["alg-none", "weak-hmac"]))
)
def test_union_restricted_to_some_classes(hostile: HostileToken) -> None:
    assert hostile.attack in {"alg-none", "weak-hmac"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"legitimate": "not-a-jwt", "keys": RING}, "legitimate must be a compact JWT"),
        ({"legitimate": LEGIT, "keys": "ring"}, "keys='ring' must be the KeyRing"),
        ({"legitimate": LEGIT, "keys": KeyRing()}, "kid is unknown"),
        ({"legitimate": LEGIT, "keys": RING, "attacks": ["alg-none"]}, "attacks=['alg-none']"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        hostile_tokens(**kwargs)


def test_unknown_attack_drawn_is_named() -> None:
    strategy = hostile_tokens(legitimate=LEGIT, keys=RING, attacks=st.just("meteor"))
    with pytest.raises(InvalidArgument, match="attacks drew 'meteor'"):
        find(strategy, lambda hostile: True)


def test_certificates_still_work_after_x5u_tokens_drawn_under_a_frozen_clock() -> None:
    import trustme

    from jitchaos.strategies import jku_tokens

    with CLOCK.freeze():
        drawn = find(jku_tokens(legitimate=LEGIT, keys=RING), lambda h: "x5u" in h.variant)
    assert "BEGIN CERTIFICATE" in next(iter(drawn.served.values()))
    trustme.CA().issue_cert("127.0.0.1")  # cryptography still takes real datetimes


@settings(max_examples=20, suppress_health_check=list(HealthCheck), deadline=None)
@given(hostile_tokens(legitimate=LEGIT, keys=RING))
def test_hypothesis_prints_a_forged_token_by_fingerprint_only(forged: HostileToken) -> None:
    # What a failing test's notes show for each draw (Hypothesis's own pretty printer).
    from hypothesis.vendor.pretty import pretty

    shown = pretty(forged)
    assert forged.token not in shown
    assert forged.attack in shown


def test_temporal_edges_are_wrong_when_presented_not_when_the_original_was_issued() -> None:
    # A day after the legitimate token was issued: "nbf in the future" relative to its iat
    # would long be in the past, a validly signed token a correct server accepts.
    later = NOW + 86_400

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(
        hostile_tokens(
            legitimate=LEGIT,
            keys=RING,
            attacks=st.just("temporal-edge"),
            now=later,
            leeway=LEEWAY,
        )
    )
    def check(hostile: HostileToken) -> None:
        with pytest.raises(InvalidToken):
            strict(hostile.token, now=later)
        # Described relative to `now`, so a replay on another clock finds the same variant.
        assert str(later) not in hostile.variant

    check()


def test_only_the_strict_profiles_extras_are_not_required() -> None:
    optional: set[str] = set()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(hostile_tokens(legitimate=LEGIT, keys=RING, now=NOW, leeway=LEEWAY))
    def collect(hostile: HostileToken) -> None:
        if not hostile.required:
            optional.add(hostile.variant.split(" (")[0].split(":")[0])
            with pytest.raises(InvalidToken):  # the strict profile still refuses each
                strict(hostile.token)

    collect()
    assert optional == {
        "absurdly long life",
        "iat in the future",
        "unknown scope",
        "repeated scopes",
        "audience list with ours last",
    }


def _signed_by_the_idp(token: str) -> bool:
    """Whether the IdP's key made the token's signature over what it says (compact JWS; the
    JSON form counts as the compact one it re-serializes). Read by hand: PyJWT refuses to
    parse some of these headers at all."""
    if token.startswith("{"):
        parts = json.loads(token)
        token = ".".join((parts["protected"], parts["payload"], parts["signature"]))
    try:
        encoded, payload, signature = token.split(".")
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except ValueError:
        return False
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        return False
    assert isinstance(PUBLIC, RSAPublicKey)
    rsa = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
    return bool(rsa.verify(f"{encoded}.{payload}".encode(), PUBLIC, raw))


def test_a_forgery_is_never_signed_by_the_idp_and_the_rest_always_are() -> None:
    """The three findings keep apart who could have made a token (issue #18): a forgery,
    made without the IdP's private key, never carries its signature over what it says; a
    confusion or profile variant always does (only the IdP could make it)."""
    seen: dict[str, set[str]] = {"forgery": set(), "confusion": set(), "profile": set()}

    @settings(max_examples=600, deadline=None, derandomize=True, database=None)
    @given(hostile_tokens(legitimate=LEGIT, keys=RING, now=NOW, leeway=LEEWAY))
    def collect(hostile: HostileToken) -> None:
        seen[hostile.finding].add(hostile.attack)
        signed = _signed_by_the_idp(hostile.token)
        if hostile.finding == "forgery":
            # Re-signing nothing: an edited payload or a stripped signature keeps at most the
            # legitimate token's signature over other bytes.
            assert not signed, (hostile.attack, hostile.variant)
        else:
            assert signed, (hostile.attack, hostile.variant)

    collect()
    assert seen["forgery"] == set(FORGERIES)
    assert seen["confusion"] == {
        "token-type-confusion",
        "audience-issuer-confusion",
        "temporal-edge",
    }
    assert seen["profile"] >= {"temporal-edge", "scope-shape", "header-oddity"}
    assert set(ATTACKS) == set(FORGERIES) | seen["confusion"] | seen["profile"]
