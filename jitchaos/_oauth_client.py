"""What the broker and the machines share as OAuth clients of the test IdP: a synchronous HTTP
exchange that reads redirects instead of following them, and the front half of an
authorization code request with PKCE (RFC 7636, S256) for the user ``login_hint`` names, which
the test IdP approves at once."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["authorization_query", "code_from", "exchange"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the authorization redirect is read, not followed


_OPENER = urllib.request.build_opener(_NoRedirect)


def exchange(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request: (status, headers, body) whatever the status; an unreachable server raises
    ``OSError`` (``urllib.error.URLError`` included)."""
    request = urllib.request.Request(  # noqa: S310 - callers pass their IdP's or proxy's URL
        url, data=body, method=method, headers=dict(headers or {})
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers), error.read()


def authorization_query(
    *, client_id: str, redirect_uri: str, scopes: Iterable[str], user: str
) -> tuple[str, str]:
    """The ``/authorize`` query string for ``user``, and the verifier the token request needs."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(sorted(scopes)),
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            "login_hint": user,
        }
    )
    return query, verifier


def code_from(location: str) -> tuple[str | None, str]:
    """The code in a redirect's ``Location``, or None and the IdP's ``error_description``."""
    answer = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    code = answer.get("code")
    return (code[0] if code else None), answer.get("error_description", [""])[0]
