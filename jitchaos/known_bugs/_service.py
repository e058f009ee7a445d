"""What the example services share: routes, bearer parsing, introspection and JWKS fetching."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
from aiohttp import web

ROUTES = {("GET", "/read"): "read", ("POST", "/write"): "write"}
Check = Callable[[str], Awaitable[frozenset[str] | None]]
"""Token -> the scopes the service believes it has, or None when it refuses the token."""


class Unavailable(Exception):
    """The IdP could not answer: the service says 503, not 401."""


def service(check: Check) -> web.Application:
    """An app that authorizes each route by the scopes ``check`` finds for the bearer token."""

    async def handle(request: web.Request) -> web.Response:
        need = ROUTES.get((request.method, request.path))
        if need is None:
            return web.json_response({"error": "not_found"}, status=404)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return web.json_response({"error": "invalid_request"}, status=401)
        try:
            scopes = await check(token)
        except Unavailable as error:
            return web.json_response(
                {"error": "temporarily_unavailable", "why": str(error)}, status=503
            )
        if scopes is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        if need not in scopes:
            return web.json_response({"error": "insufficient_scope"}, status=403)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def introspect(
    session: aiohttp.ClientSession, url: str, token: str, client: tuple[str, str]
) -> dict[str, Any]:
    """RFC 7662 introspection; :class:`Unavailable` when the IdP does not answer properly."""
    basic = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
    try:
        async with session.post(
            url, data={"token": token}, headers={"Authorization": f"Basic {basic}"}
        ) as answer:
            data = await answer.json(content_type=None)
    except (aiohttp.ClientError, ValueError) as error:
        raise Unavailable(f"introspection failed: {error}") from None
    if answer.status != 200 or not isinstance(data, dict):
        raise Unavailable(f"introspection answered {answer.status}")
    return data


async def fetch_jwks(session: aiohttp.ClientSession, url: str) -> dict[str, jwt.PyJWK]:
    """The JWKS by kid; :class:`Unavailable` when it cannot be fetched."""
    try:
        async with session.get(url) as answer:
            data = await answer.json(content_type=None)
    except (aiohttp.ClientError, ValueError) as error:
        raise Unavailable(f"JWKS fetch failed: {error}") from None
    if answer.status != 200 or not isinstance(data, dict):
        raise Unavailable(f"JWKS answered {answer.status}")
    return {k["kid"]: jwt.PyJWK(k) for k in data.get("keys", []) if "kid" in k}


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    return frozenset(str(claims.get("scope", "")).split())


def verify(
    token: str, key: jwt.PyJWK, now: float, issuer: str, audience: str = "jitchaos"
) -> dict[str, Any] | None:
    """What a careful resource server checks (RFC 9068 §4): the algorithm pinned to the key,
    ``typ``, issuer, a single audience, integer times against the service's clock, and a
    well-formed scope string. None when any of it fails."""
    try:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "at+jwt" or "cty" in header:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            audience=audience,
            issuer=issuer,
            options={
                "strict_aud": True,
                "require": ["exp", "iat"],  # RFC 9068 §2.2: nbf is optional
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError:
        return None
    times = [claims.get(name, claims.get("iat")) for name in ("exp", "nbf", "iat")]
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        return None
    exp, nbf, iat = times
    if now >= exp or now < nbf or now < iat or exp - iat > 86400:  # type: ignore[operator]
        return None
    scope = claims.get("scope", "")
    if not isinstance(scope, str) or len(scope.split(" ")) != len(set(scope.split())):
        return None
    return claims


def session_context(app: web.Application, key: web.AppKey[aiohttp.ClientSession]) -> None:
    async def open_session(app: web.Application) -> Any:
        app[key] = aiohttp.ClientSession()
        yield
        await app[key].close()

    app.cleanup_ctx.append(open_session)
