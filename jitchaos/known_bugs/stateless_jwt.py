"""Stateless JWT validation with no revocation check: signature, issuer, audience and times are
all verified (and the JWKS is refetched on an unknown kid), but a revoked token, or one whose
grant lost scopes, is honoured until its ``exp``.

Twin (``fixed=True``): after the local checks, asks the IdP's introspection whether the token
is still active and for which scopes, remembering each answer for 10 seconds (a policy of 30 s
staleness allows that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from jitchaos.known_bugs._service import introspect, scopes_of, service, session_context
from jitchaos.known_bugs.jwks_cache import SESSION, jwt_validator


def make_app(
    *,
    idp_url: str,
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
    client: tuple[str, str] = ("machine-api", "machine-api-secret"),
    audience: str = "jitchaos",
) -> web.Application:
    cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def check(token: str) -> frozenset[str] | None:
        scopes = await local(token)
        if scopes is None or not fixed:
            return scopes  # the bug: nothing asks whether the token is still good
        hit = cache.get(token)
        if hit is None or now() - hit[0] >= 10:
            answer = await introspect(app[SESSION], f"{idp_url}/introspect", token, client)
            cache[token] = hit = (now(), answer)
        if hit[1].get("active") is not True:
            return None
        return scopes & scopes_of(hit[1])

    app = service(check)
    local = jwt_validator(
        app, idp_url, issuer if issuer is not None else idp_url, now, True, audience
    )
    session_context(app, SESSION)
    return app
