"""A JWKS cache refreshed every minute that is wiped when a refresh fails: during a short JWKS
outage every valid token is refused as invalid (401), instead of the last good keys carrying on.

Twin (``fixed=True``): a failed refresh keeps the last good keys, and a signature that fails
with a known kid refreshes the keys (the key behind the kid may have changed). A token the
last good keys cannot verify while the JWKS is down is answered 503, not refused as invalid.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import jwt
from aiohttp import web

from jitchaos.known_bugs._service import (
    Unavailable,
    fetch_jwks,
    scopes_of,
    service,
    session_context,
    verify,
)

SESSION = web.AppKey("session", aiohttp.ClientSession)


def _verifies(token: str, keys: dict[str, jwt.PyJWK], kid: object, now: float, iss: str) -> bool:
    key = keys.get(kid) if isinstance(kid, str) else None
    return key is not None and verify(token, key, now, iss) is not None


REFRESH_EVERY = 60.0


def make_app(
    *,
    idp_url: str,
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
) -> web.Application:
    iss = issuer if issuer is not None else idp_url
    keys: dict[str, jwt.PyJWK] = {}
    state = {"fetched": -1e18}

    async def check(token: str) -> frozenset[str] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        stale = now() - state["fetched"] >= REFRESH_EVERY
        if stale or kid not in keys or (fixed and not _verifies(token, keys, kid, now(), iss)):
            try:
                fresh = await fetch_jwks(app[SESSION], f"{idp_url}/jwks")
            except Unavailable:
                if not fixed:
                    # The bug: a failed refresh forgets the last good keys, and the token is
                    # then "signed by an unknown key": 401, as if it were invalid.
                    keys.clear()
                elif not keys or not _verifies(token, keys, kid, now(), iss):
                    # Nothing to go on, or the token needs keys that cannot be fetched now (a
                    # new kid, or a new key behind an old one): unavailable (503), not invalid.
                    raise
            else:
                keys.clear()
                keys.update(fresh)
                state["fetched"] = now()
        key = keys.get(kid) if isinstance(kid, str) else None
        claims = verify(token, key, now(), iss) if key is not None else None
        return scopes_of(claims) if claims is not None else None

    app = service(check)
    session_context(app, SESSION)
    return app
