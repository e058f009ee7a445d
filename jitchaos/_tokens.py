"""JWT access tokens (RFC 9068) minted and verified with PyJWT, and token fingerprints.

A raw token is a credential: nothing jitchaos records (ledger, audit, history, notebooks) holds
one. Everything refers to a token by its :func:`fingerprint` instead.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import jwt

from jitchaos._checks import finite_number, scope_names
from jitchaos._keys import KeyRing, SigningKey
from jitchaos.errors import InvalidArgument, InvalidToken

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "Secret",
    "fingerprint",
    "format_scopes",
    "mint_access_token",
    "mint_id_token",
    "parse_scopes",
    "verify_access_token",
]

ACCESS_TOKEN_TYPE = "at+jwt"
"""The JOSE ``typ`` of an access token (RFC 9068 §2.1); ID tokens carry ``JWT``."""

_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id")


def fingerprint(token: str) -> str:
    """A stable, non-reversible name for a token: the first 16 hex digits of its SHA-256."""
    if not isinstance(token, str):
        raise InvalidArgument(f"a token to fingerprint is a str, not {type(token).__name__}")
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Secret(str):
    """A token or client secret: a ``str`` to send, whose ``repr`` shows only its fingerprint.

    pytest prints the arguments of every function in a failing traceback (and the locals with
    ``-l``) with ``repr``: a credential carried as a :class:`Secret` never appears there, nor in
    a log line that formats it with ``%r``. ``str()`` and f-strings give the value itself.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<secret {fingerprint(self)}>"


def format_scopes(scopes: Collection[str]) -> str:
    """The space-delimited ``scope`` value (RFC 6749 §3.3), sorted so equal sets look equal."""
    return " ".join(sorted(scopes))


def parse_scopes(value: str) -> frozenset[str]:
    """The scope set of a space-delimited ``scope`` value (RFC 6749 §3.3)."""
    return frozenset(value.split())


def mint_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    scopes: Collection[str],
    issued_at: int,
    expires_at: int,
    jti: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an RFC 9068 access token with ``key`` (usually a key ring's ``current``)."""
    if isinstance(scopes, str):
        raise InvalidArgument(f"scopes={scopes!r} must be a collection of scope names, not a str")
    for name, value in (("issued_at", issued_at), ("expires_at", expires_at)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{name}={value!r} must be a whole NumericDate (int)")
    if expires_at <= issued_at:
        raise InvalidArgument(f"expires_at={expires_at} must be after issued_at={issued_at}")
    claims: dict[str, Any] = dict(extra_claims or {})
    claims.update(
        iss=issuer,
        sub=subject,
        aud=audience,
        client_id=client_id,
        iat=issued_at,
        nbf=issued_at,
        exp=expires_at,
        jti=jti or uuid.uuid4().hex,
    )
    if scopes:  # RFC 6749 §3.3: a scope value holds at least one scope; none means no claim
        claims["scope"] = format_scopes(scopes)
    else:
        claims.pop("scope", None)
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def mint_id_token(
    key: SigningKey,
    *,
    issuer: str,
    client_id: str,
    subject: str,
    issued_at: int,
    expires_at: int,
    nonce: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an OpenID Connect ID token (audience: the client) with ``key``."""
    claims: dict[str, Any] = dict(extra_claims or {})
    claims.update(
        iss=issuer, sub=subject, aud=client_id, iat=issued_at, exp=expires_at, auth_time=issued_at
    )
    if nonce is not None:
        claims["nonce"] = nonce
    return jwt.encode(
        claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": "JWT"}
    )


def verify_access_token(
    token: str,
    keys: KeyRing,
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway: float = 0.0,
    max_lifetime: float | None = None,
    known_scopes: Collection[str] | None = None,
) -> dict[str, Any]:
    """Verify ``token`` as this issuer's access token at time ``now`` and return its claims.

    What a strict resource server checks (RFC 9068 §4), with PyJWT doing the JOSE work: the key
    by ``kid`` and the algorithm pinned to that key's, ``typ`` ``at+jwt``, unknown ``crit``
    extensions refused, the issuer exactly, the audience exactly (one value, ours), every RFC
    9068 claim present. Here, against the injected clock ``now`` (PyJWT reads the wall clock):
    ``exp``/``nbf``/``iat`` as integer NumericDates, expiry and not-before with ``leeway``, no
    ``iat`` in the future, and with ``max_lifetime`` no lifetime longer than that. ``scope``
    must be one space-separated string of distinct scopes, all in ``known_scopes`` when given.
    Raises :class:`~jitchaos.errors.InvalidToken` naming what is wrong with the token, and
    :class:`~jitchaos.errors.InvalidArgument` naming a bad argument (a NaN ``now`` would pass
    every time check).
    """
    now = finite_number("now", now)
    leeway = finite_number("leeway", leeway, minimum=0)
    if max_lifetime is not None:
        max_lifetime = finite_number("max_lifetime", max_lifetime, minimum=0)
    if not isinstance(keys, KeyRing):
        raise InvalidArgument(f"keys={keys!r} must be a KeyRing")
    if known_scopes is not None:
        known_scopes = scope_names("known_scopes", known_scopes)
    if not isinstance(token, str):
        raise InvalidToken(f"not a JWS compact token: {type(token).__name__}, not str")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise InvalidToken(f"not a JWS compact token: {error}") from None
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken(f"kid {kid!r} names no published key")
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken(f"typ {header.get('typ')!r} is not {ACCESS_TOKEN_TYPE!r}")
    if "cty" in header:
        raise InvalidToken(f"cty {header['cty']!r}: a nested JWT is not an access token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[key.algorithm],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(_REQUIRED_CLAIMS),
                "strict_aud": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    for name in ("exp", "nbf", "iat"):
        if isinstance(claims[name], bool) or not isinstance(claims[name], int):
            raise InvalidToken(f"{name} claim {claims[name]!r} is not an integer NumericDate")
    if now >= claims["exp"] + leeway:
        raise InvalidToken(f"expired at {claims['exp']} (now {now})")
    if now < claims["nbf"] - leeway:
        raise InvalidToken(f"not valid before {claims['nbf']} (now {now})")
    if now < claims["iat"] - leeway:
        raise InvalidToken(f"issued in the future, at {claims['iat']} (now {now})")
    if max_lifetime is not None and claims["exp"] - claims["iat"] > max_lifetime:
        raise InvalidToken(
            f"lives {claims['exp'] - claims['iat']} s, longer than the {max_lifetime:g} s allowed"
        )
    _check_scope(claims.get("scope"), known_scopes)
    return claims


def _check_scope(scope: object, known: Collection[str] | None) -> None:
    if scope is None:
        return
    if not isinstance(scope, str):
        raise InvalidToken(f"scope {scope!r} is not a space-separated string (RFC 9068 §2.2.3)")
    names = scope.split(" ")
    # RFC 6749 §3.3: one or more scope-tokens, each once, separated by single spaces.
    if len(set(names)) != len(names) or "" in names:
        raise InvalidToken(f"scope {scope!r} is empty, repeats a scope or has empty entries")
    if known is not None:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise InvalidToken(f"scope names unknown scopes {unknown}")
