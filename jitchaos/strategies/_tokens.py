"""Strategies for keys, valid tokens, principals and grants."""

from __future__ import annotations

import functools
import string
from typing import Any

import jwt
from hypothesis import strategies as st

from jitchaos._keys import ALGORITHMS, KeyRing, SigningKey
from jitchaos._records import GrantRequest, Principal, PrincipalKind
from jitchaos._tokens import ACCESS_TOKEN_TYPE
from jitchaos.errors import InvalidArgument
from jitchaos.strategies._claims import claims as claim_sets
from jitchaos.strategies._claims import scopes

__all__ = ["grants", "principals", "signing_keys", "tokens"]

_POOL_SIZE = 3
_names = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)


def _check_strategy(name: str, value: object) -> None:
    if value is not None and not isinstance(value, st.SearchStrategy):
        raise InvalidArgument(f"{name}={value!r} must be a strategy")


@functools.cache
def _key_pool(algorithm: str) -> tuple[SigningKey, ...]:
    # RSA key generation takes tens of milliseconds: a few keys per process, never per example.
    return tuple(SigningKey.generate(algorithm) for _ in range(_POOL_SIZE))  # type: ignore[arg-type]


def signing_keys(
    *, algorithms: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[SigningKey]:
    """Signing keys (RS256 or ES256, or what ``algorithms`` draws).

    Keys come from a small pool generated once per process and algorithm, so drawing a key
    costs nothing; two draws may give the same key.

    Shrinks towards the first algorithm (RS256) and the first key of its pool.
    """
    _check_strategy("algorithms", algorithms)
    chosen = algorithms if algorithms is not None else st.sampled_from(ALGORITHMS)

    def pick(algorithm: str) -> st.SearchStrategy[SigningKey]:
        if algorithm not in ALGORITHMS:
            raise InvalidArgument(
                f"algorithms drew {algorithm!r}, not one of {', '.join(ALGORITHMS)}"
            )
        return st.sampled_from(_key_pool(algorithm))

    return chosen.flatmap(pick)


def tokens(
    *,
    keys: KeyRing,
    issuer: str,
    audience: str,
    claims: st.SearchStrategy[dict[str, Any]] | None = None,
) -> st.SearchStrategy[str]:
    """Valid RFC 9068 access tokens signed by ``keys``'s current key, from ``issuer`` for
    ``audience``.

    ``claims`` draws the claim set (default: :func:`claims` for that issuer and audience);
    ``iss`` and ``aud`` are always set to ``issuer`` and ``audience``. The header carries the
    key's ``kid`` and ``typ: at+jwt``. Keys are never generated per example: signing is the
    only cost.

    Shrinks as ``claims`` does: towards no optional claims and the shortest lifetime.
    """
    if not isinstance(keys, KeyRing):
        raise InvalidArgument(f"keys={keys!r} must be a KeyRing")
    for name, value in (("issuer", issuer), ("audience", audience)):
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"{name}={value!r} must be a non-empty string")
    _check_strategy("claims", claims)
    drawn = (
        claims
        if claims is not None
        else claim_sets(issuers=st.just(issuer), audiences=st.just(audience))
    )

    def sign(body: dict[str, Any]) -> str:
        if not isinstance(body, dict):
            raise InvalidArgument(f"claims drew {body!r}, not a dict of claims")
        key = keys.current
        return jwt.encode(
            {**body, "iss": issuer, "aud": audience},
            key.private_key,
            algorithm=key.algorithm,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )

    return drawn.map(sign)


def principals(
    *,
    kinds: st.SearchStrategy[PrincipalKind] | None = None,
    names: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Principal]:
    """Users (``subject:NAME``) and services (``client:ID``).

    Shrinks towards a subject with the shortest, simplest name.
    """
    _check_strategy("kinds", kinds)
    _check_strategy("names", names)
    return st.builds(
        Principal,
        kinds if kinds is not None else st.sampled_from(list(PrincipalKind)),
        names if names is not None else _names,
    )


def grants(
    *,
    principals: st.SearchStrategy[Principal] | None = None,
    client_ids: st.SearchStrategy[str] | None = None,
    scope_sets: st.SearchStrategy[frozenset[str]] | None = None,
    min_lifetime: int = 1,
    max_lifetime: int = 3600,
) -> st.SearchStrategy[GrantRequest]:
    """Grants to make (:class:`~jitchaos.GrantRequest`): who, through which client, which
    scopes, for ``min_lifetime`` to ``max_lifetime`` seconds, with or without a refresh token.

    Shrinks towards the simplest principal and client, no scopes, the shortest lifetime and no
    refresh token.
    """
    for name, value in (("min_lifetime", min_lifetime), ("max_lifetime", max_lifetime)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name}={value!r} must be a positive integer of seconds")
    if max_lifetime < min_lifetime:
        raise InvalidArgument(
            f"max_lifetime={max_lifetime!r} is less than min_lifetime={min_lifetime!r}"
        )
    _check_strategy("principals", principals)
    _check_strategy("client_ids", client_ids)
    _check_strategy("scope_sets", scope_sets)
    return st.builds(
        GrantRequest,
        principal=principals if principals is not None else _principals_default(),
        client_id=client_ids if client_ids is not None else _names,
        scopes=scope_sets if scope_sets is not None else scopes(max_size=4),
        lifetime=st.integers(min_lifetime, max_lifetime),
        refresh=st.booleans(),
    )


def _principals_default() -> st.SearchStrategy[Principal]:
    return principals()
