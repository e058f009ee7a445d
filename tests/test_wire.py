"""The wire rules the embedded IdP and the proxy share: one form parser, one Basic and Bearer
reader, one dot-segment resolver."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitchaos._wire import (
    FormError,
    basic_credentials,
    bearer_token,
    form_fields,
    form_pairs,
    resolve_dot_segments,
)

_FORM_TEXT = st.text(alphabet=st.sampled_from("ab=&%+2F0é;"), max_size=30)


@given(_FORM_TEXT)
def test_forms_parse_as_parse_qsl_does(text: str) -> None:
    """The URL Standard's reading, as Python's parse_qsl (and the frameworks) give it, except
    that text which is not UTF-8 once percent-decoded is an error rather than replaced."""
    try:
        expected = urllib.parse.parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        with pytest.raises(FormError, match="UTF-8"):
            form_pairs(text.encode())
        return
    assert form_pairs(text.encode()) == expected


def test_form_errors_name_what_is_wrong() -> None:
    with pytest.raises(FormError, match="not UTF-8"):
        form_pairs(b"a=\xff")
    with pytest.raises(FormError, match="more than 64 parameters"):
        form_pairs(b"&".join([b"a=1"] * 65))
    with pytest.raises(FormError, match="'scope' is given more than once"):
        form_fields(b"scope=a&scope=b")
    assert form_fields(b"grant_type=client_credentials&&scope=a+b") == {
        "grant_type": "client_credentials",
        "scope": "a b",
    }


def test_basic_and_bearer_credentials() -> None:
    encoded = base64.b64encode(b"my%3Aclient:s%26cret").decode()
    assert basic_credentials(f"Basic {encoded}") == ("my:client", "s&cret")
    assert basic_credentials(f"basic  {encoded}") == ("my:client", "s&cret")
    assert basic_credentials("Bearer abc") is None
    for malformed in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(ValueError, match="malformed Basic credentials"):
            basic_credentials(malformed)
    assert bearer_token("Bearer  abc ") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Bearer") is None
    assert bearer_token("Basic abc") is None


@pytest.mark.parametrize(
    ("path", "resolved"),
    [
        ("/a/b/../c", "/a/c"),
        ("/a/./b/.", "/a/b/"),
        ("/../../a", "/a"),
        ("/a/b/..", "/a/"),
        ("/a//../b", "/a/b"),
        ("/a/%2e%2e/b", "/b"),
    ],
)
def test_dot_segments_resolve_as_rfc_3986_says(path: str, resolved: str) -> None:
    segments = resolve_dot_segments(path.split("/")[1:], meaning=urllib.parse.unquote)
    assert "/" + "/".join(segments) == resolved
