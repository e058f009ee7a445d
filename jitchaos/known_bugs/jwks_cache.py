"""Stateless JWT validation with a JWKS fetched once: a token signed by a new key (after a
rotation) is refused for good, because an unknown ``kid`` never triggers a refetch.

Twin (``fixed=True``): an unknown kid, or a known kid whose signature fails (the key behind
it changed), refetches the JWKS (at most once per clock instant).
Revocation is not checked by either (stateless JWTs): their policy allows staleness up to the
token lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp
import jwt
from aiohttp import web

from jitchaos.known_bugs._service import fetch_jwks, scopes_of, service, session_context, verify

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(
    *,
    idp_url: str,
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
) -> web.Application:
    app = service(lambda token: check(token))
    check = jwt_validator(app, idp_url, issuer if issuer is not None else idp_url, now, fixed)
    session_context(app, SESSION)
    return app


def jwt_validator(
    app: web.Application,
    idp_url: str,
    issuer: str,
    now: Callable[[], float],
    refetch: bool,
    audience: str = "jitchaos",
) -> Callable[[str], Awaitable[frozenset[str] | None]]:
    """Local JWT validation against a cached JWKS; ``refetch`` is the fix (see above)."""
    keys: dict[str, jwt.PyJWK] = {}
    fetched: dict[str, float | None] = {"at": None}

    async def load() -> None:
        keys.clear()
        keys.update(await fetch_jwks(app[SESSION], f"{idp_url}/jwks"))
        fetched["at"] = now()

    async def check(token: str) -> frozenset[str] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        if not keys or (refetch and kid not in keys and fetched["at"] != now()):
            await load()
        key = keys.get(kid) if isinstance(kid, str) else None
        claims = verify(token, key, now(), issuer, audience) if key is not None else None
        if claims is None and refetch and key is not None and fetched["at"] != now():
            # The kid is known but the signature fails: the key behind it may have changed.
            await load()
            key = keys.get(kid) if isinstance(kid, str) else None
            claims = verify(token, key, now(), issuer, audience) if key is not None else None
        return scopes_of(claims) if claims is not None else None

    return check
