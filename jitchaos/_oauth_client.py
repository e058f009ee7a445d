"""What the broker and the machines share as OAuth clients of the test IdP: a synchronous HTTP
exchange that reads redirects instead of following them, and the front half of an
authorization code request with PKCE (RFC 7636, S256) for the user ``login_hint`` names, which
the test IdP approves at once."""

from __future__ import annotations

import base64
import hashlib
import http.client
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Connections", "authorization_query", "code_from", "exchange"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the authorization redirect is read, not followed


_OPENER = urllib.request.build_opener(_NoRedirect)


class Connections:
    """Keep-alive HTTP/1.1 connections by origin, for one client on one thread (a machine's
    rules): a new TCP connection and urllib's machinery per request cost about 300 us more
    than a request on an open connection, and a machine's step makes several. ``close()``
    when done."""

    _RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            connection = self._open.get(key)
            reused = connection is not None
            if connection is None:
                connection = self._open[key] = self._connect(key, timeout)
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request(method, target, body=body, headers=dict(headers))
                response = connection.getresponse()
                data = response.read()
            except self._RETRYABLE:
                self._drop(key)
                if reused and attempt == 1:
                    continue  # the server closed an idle connection: once more, on a new one
                raise
            except BaseException:
                self._drop(key)
                raise
            if response.will_close:
                self._drop(key)
            return int(response.status), dict(response.headers), data
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _connect(key: tuple[str, str, int], timeout: float) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _drop(self, key: tuple[str, str, int]) -> None:
        connection = self._open.pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for key in list(self._open):
            self._drop(key)


def exchange(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
    connections: Connections | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request: (status, headers, body) whatever the status; an unreachable server raises
    ``OSError`` (``urllib.error.URLError`` included). With ``connections``, on a kept-alive
    connection."""
    if connections is not None:
        return connections.request(method, url, dict(headers or {}), body, timeout)
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
