from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from jitchaos.errors import InvalidArgument
from jitchaos.strategies import claims, scopes

SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@given(scopes(min_size=1, max_size=3))
def test_scopes_are_rfc6749_scope_tokens(drawn: frozenset[str]) -> None:
    assert 1 <= len(drawn) <= 3
    assert all(SCOPE_TOKEN.fullmatch(s) for s in drawn)


@given(claims(min_lifetime=30, max_lifetime=60))
def test_claims_are_consistent(drawn: dict[str, Any]) -> None:
    assert 30 <= drawn["exp"] - drawn["iat"] <= 60
    assert drawn["nbf"] == drawn["iat"]
    for name in ("iss", "sub", "aud", "client_id", "jti"):
        assert isinstance(drawn[name], str)
        assert drawn[name]


def test_claims_shrink_to_no_optional_claims_and_shortest_lifetime() -> None:
    smallest = find(claims(min_lifetime=5, max_lifetime=500), lambda c: True)
    # No scopes means no scope claim (RFC 6749 §3.3 has no empty scope value).
    assert set(smallest) == {"iss", "sub", "aud", "client_id", "iat", "nbf", "exp", "jti"}
    assert smallest["exp"] - smallest["iat"] == 5


@pytest.mark.parametrize(
    ("factory", "kwargs", "name"),
    [
        (scopes, {"min_size": -1}, "min_size"),
        (scopes, {"min_size": 3, "max_size": 1}, "max_size"),
        (scopes, {"names": ["read"]}, "names"),
        (claims, {"min_lifetime": 0}, "min_lifetime"),
        (claims, {"min_lifetime": 10, "max_lifetime": 5}, "max_lifetime"),
        (claims, {"issuers": "https://idp"}, "issuers"),
    ],
)
def test_bad_arguments_name_themselves(factory: Any, kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        factory(**kwargs)


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        scopes(st.just("read"))  # type: ignore[call-arg]
