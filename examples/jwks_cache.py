"""Stateless JWT validation with a JWKS fetched once: a token signed by a new key (after a
rotation) is refused for good, because an unknown ``kid`` never triggers a refetch.

Twin (``fixed=True``): an unknown kid, or a known kid whose signature fails (the key behind
it changed), refetches the JWKS (at most once per clock instant).
Revocation is not checked by either (stateless JWTs): their policy allows staleness up to the
token lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import jwt
from aiohttp import web

from examples._service import fetch_jwks, scopes_of, service, session_context, verify

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(
    *,
    idp_url: str,
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
) -> web.Application:
    iss = issuer if issuer is not None else idp_url
    keys: dict[str, jwt.PyJWK] = {}
    fetched = {"at": None}

    async def check(token: str) -> frozenset[str] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        if not keys or (fixed and kid not in keys and fetched["at"] != now()):
            keys.clear()
            keys.update(await fetch_jwks(app[SESSION], f"{idp_url}/jwks"))
            fetched["at"] = now()  # type: ignore[assignment]
        key = keys.get(kid) if isinstance(kid, str) else None
        claims = verify(token, key, now(), iss) if key is not None else None
        if claims is None and fixed and key is not None and fetched["at"] != now():
            # The kid is known but the signature fails: the key behind it may have changed.
            keys.clear()
            keys.update(await fetch_jwks(app[SESSION], f"{idp_url}/jwks"))
            fetched["at"] = now()  # type: ignore[assignment]
            key = keys.get(kid) if isinstance(kid, str) else None
            claims = verify(token, key, now(), iss) if key is not None else None
        return scopes_of(claims) if claims is not None else None

    app = service(check)
    session_context(app, SESSION)
    return app
