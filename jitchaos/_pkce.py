"""The client half of an authorization code request with PKCE (RFC 7636, S256), for the test
IdP that approves the user named by ``login_hint`` at once: what the broker and the machines
send, and how they read the code back from the redirect."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Iterable

__all__ = ["authorization_query", "code_from"]


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
