"""What the example clients share: a user's login (authorization code + PKCE, approved at once
by the test IdP for ``login_hint``), refresh, and a gateway app that calls the API with the
token it holds."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from jitchaos.known_bugs._service import session_context

REDIRECT = "http://127.0.0.1/callback"
SESSION = web.AppKey("client-session", aiohttp.ClientSession)


class Unavailable(Exception):
    """The IdP could not answer (an outage): try again later, keep the session."""


class Tokens:
    """The session a client holds for its user, and its own timer for the access token."""

    def __init__(self) -> None:
        self.access: str | None = None
        self.refresh: str | None = None
        self.expires_at = 0.0

    def expired(self, access: str) -> None:
        """The API refused ``access``: renew before the next use, whatever the timer says."""
        if self.access == access:
            self.expires_at = 0.0


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def _token(
    session: aiohttp.ClientSession, idp_url: str, client: tuple[str, str], form: dict[str, str]
) -> dict[str, Any] | None:
    """POST /token: the answer, None when the grant is refused, Unavailable on 5xx."""
    try:
        async with session.post(
            f"{idp_url}/token", data=form, headers={"Authorization": _basic(*client)}
        ) as answer:
            data = await answer.json(content_type=None)
            status = answer.status
    except (aiohttp.ClientError, ValueError) as error:
        raise Unavailable(str(error)) from None
    if status >= 500 or not isinstance(data, dict):
        raise Unavailable(f"token endpoint answered {status}")
    return data if status == 200 else None


async def login(
    session: aiohttp.ClientSession,
    idp_url: str,
    client: tuple[str, str],
    now: float,
    tokens: Tokens,
    *,
    user: str = "alice",
    scope: str = "read write",
) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = {
        "response_type": "code",
        "client_id": client[0],
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "s",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "login_hint": user,
    }
    try:
        async with session.get(
            f"{idp_url}/authorize", params=query, allow_redirects=False
        ) as answer:
            location = answer.headers.get("Location", "")
    except aiohttp.ClientError as error:
        raise Unavailable(str(error)) from None
    code = parse_qs(urlsplit(location).query).get("code")
    if not code:
        raise Unavailable("the IdP did not log the user in")
    form = {
        "grant_type": "authorization_code",
        "code": code[0],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    answer_json = await _token(session, idp_url, client, form)
    if answer_json is None:
        raise Unavailable("the IdP refused the login")
    _keep(answer_json, now, tokens)


async def refresh(
    session: aiohttp.ClientSession,
    idp_url: str,
    client: tuple[str, str],
    now: float,
    tokens: Tokens,
) -> bool:
    """Exchange the refresh token; False when the IdP refuses it (the session is over)."""
    assert tokens.refresh is not None
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh}
    answer = await _token(session, idp_url, client, form)
    if answer is None:
        return False
    _keep(answer, now, tokens)
    return True


def _keep(answer: dict[str, Any], now: float, tokens: Tokens) -> None:
    tokens.access = answer["access_token"]
    tokens.refresh = answer.get("refresh_token", tokens.refresh)
    tokens.expires_at = now + float(answer.get("expires_in", 0))


Call = Callable[[str, str, str], Awaitable[tuple[int, bytes]]]


def gateway(
    downstream: str, answer: Callable[[web.Request, Call], Awaitable[tuple[int, bytes]]]
) -> web.Application:
    """An app that answers every request through ``answer``, which calls the API (``call``
    with method, path and access token) as it sees fit."""

    async def call(method: str, path: str, token: str) -> tuple[int, bytes]:
        async with app[SESSION].request(
            method, downstream + path, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            return response.status, await response.read()

    async def handle(request: web.Request) -> web.Response:
        try:
            status, body = await answer(request, call)
        except Unavailable as error:
            return web.json_response(
                {"error": "temporarily_unavailable", "why": str(error)}, status=503
            )
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    session_context(app, SESSION)
    return app


def token_gateway(
    *,
    idp_url: str,
    downstream: str,
    client: tuple[str, str],
    now: Callable[[], float],
    refresh_on_401: bool,
    single_flight: bool,
) -> web.Application:
    """A gateway holding user alice's session: it logs in on first use, renews when its own
    timer runs out, and (``refresh_on_401``) when the API refuses the token; renewal refreshes,
    or logs in again when the refresh token is refused. ``single_flight`` renews one request at
    a time, a request that waited using the token the other one got."""
    tokens = Tokens()
    lock = asyncio.Lock()

    async def exchange() -> None:
        if tokens.refresh is None or not await refresh(
            app[SESSION], idp_url, client, now(), tokens
        ):
            await login(app[SESSION], idp_url, client, now(), tokens)

    async def renew(seen: str | None) -> None:
        if not single_flight and seen is not None:
            await exchange()  # every request in flight exchanges the same refresh token
            return
        async with lock:
            if tokens.access == seen:  # else another request already renewed it
                await exchange()

    async def answer(request: web.Request, call: Call) -> tuple[int, bytes]:
        if tokens.access is None or now() >= tokens.expires_at:
            await renew(tokens.access)
        seen = tokens.access
        assert seen is not None
        status, body = await call(request.method, request.path, seen)
        if status == 401 and refresh_on_401:
            tokens.expired(seen)  # never present it again, even if renewing fails now
            await renew(seen)
            assert tokens.access is not None
            status, body = await call(request.method, request.path, tokens.access)
        return status, body

    app = gateway(downstream, answer)
    return app
