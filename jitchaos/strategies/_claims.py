"""Strategies for scopes and the registered claims of an access token."""

from __future__ import annotations

import math
import string
from typing import Any

from hypothesis import strategies as st

from jitchaos.errors import InvalidArgument

__all__ = ["claims", "scopes"]

# RFC 6749 §3.3 allows any of %x21 / %x23-5B / %x5D-7E; real scopes are mostly these.
_SCOPE_ALPHABET = string.ascii_lowercase + string.digits + ":._-/"
_COMMON_SCOPES = ("read", "write", "admin", "openid", "profile", "email", "offline_access")


def _check_size(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{name}={value!r} must be a non-negative integer")


def scopes(
    *,
    names: st.SearchStrategy[str] | None = None,
    min_size: int = 0,
    max_size: int | None = None,
) -> st.SearchStrategy[frozenset[str]]:
    """Sets of RFC 6749 §3.3 scope tokens.

    ``names`` draws each scope (default: common scopes like ``read`` and ``write``, then any
    scope-token of lowercase letters, digits and ``:._-/``).

    Shrinks towards fewer scopes, and towards the first common names (``read``, ``write``).
    """
    _check_size("min_size", min_size)
    _check_size("max_size", max_size, allow_none=True)
    if max_size is not None and max_size < min_size:
        raise InvalidArgument(f"max_size={max_size!r} is less than min_size={min_size!r}")
    if names is None:
        names = st.sampled_from(_COMMON_SCOPES) | st.text(_SCOPE_ALPHABET, min_size=1, max_size=20)
    elif not isinstance(names, st.SearchStrategy):
        raise InvalidArgument(f"names={names!r} must be a strategy of scope names")
    return st.frozensets(names, min_size=min_size, max_size=max_size)


def claims(
    *,
    issuers: st.SearchStrategy[str] | None = None,
    audiences: st.SearchStrategy[str] | None = None,
    subjects: st.SearchStrategy[str] | None = None,
    scope_sets: st.SearchStrategy[frozenset[str]] | None = None,
    issued_at: st.SearchStrategy[int] | None = None,
    min_lifetime: int = 1,
    max_lifetime: int = 3600,
    optional: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Claim sets of an RFC 9068 access token: ``iss``, ``sub``, ``aud``, ``client_id``,
    ``scope`` (absent when no scopes were drawn), ``iat``, ``nbf``, ``exp``, ``jti``, and
    (with ``optional``) some of ``azp``, ``auth_time``, ``roles`` and ``groups``.

    ``exp - iat`` lies in ``[min_lifetime, max_lifetime]`` seconds.

    Shrinks towards no optional claims, the shortest lifetime (``min_lifetime``), the smallest
    ``iat`` and the simplest issuer, audience, subject and scopes.
    """
    for name, value in (("min_lifetime", min_lifetime), ("max_lifetime", max_lifetime)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name}={value!r} must be a positive integer of seconds")
    if max_lifetime < min_lifetime:
        raise InvalidArgument(
            f"max_lifetime={max_lifetime!r} is less than min_lifetime={min_lifetime!r}"
        )
    for name, strategy in (
        ("issuers", issuers),
        ("audiences", audiences),
        ("subjects", subjects),
        ("scope_sets", scope_sets),
        ("issued_at", issued_at),
    ):
        if strategy is not None and not isinstance(strategy, st.SearchStrategy):
            raise InvalidArgument(f"{name}={strategy!r} must be a strategy")
    identifiers = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
    issuers = issuers if issuers is not None else identifiers.map("https://{}.example".format)
    audiences = audiences if audiences is not None else identifiers
    subjects = subjects if subjects is not None else identifiers
    scope_sets = scope_sets if scope_sets is not None else scopes()
    issued_at = issued_at if issued_at is not None else st.integers(1_600_000_000, 2_000_000_000)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        iat = draw(issued_at)
        if isinstance(iat, bool) or not isinstance(iat, int) or not math.isfinite(iat):
            raise InvalidArgument(f"issued_at drew {iat!r}, not an integer NumericDate")
        subject = draw(subjects)
        result: dict[str, Any] = {
            "iss": draw(issuers),
            "sub": subject,
            "aud": draw(audiences),
            "client_id": draw(identifiers),
            "iat": iat,
            "nbf": iat,
            "exp": iat + draw(st.integers(min_lifetime, max_lifetime)),
            "jti": draw(st.uuids()).hex,
        }
        granted = draw(scope_sets)
        if granted:  # RFC 6749 §3.3: at least one scope-token, or no scope claim at all
            result["scope"] = " ".join(sorted(granted))
        if optional:
            extras = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "azp": identifiers,
                        "auth_time": st.just(iat),
                        "roles": st.lists(identifiers, max_size=3, unique=True),
                        "groups": st.lists(identifiers, max_size=3, unique=True),
                    },
                )
            )
            result.update(extras)
        return result

    return build()
