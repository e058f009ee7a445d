"""Introspection behind a cache that lives five minutes: a revoked or narrowed token keeps its
old answer that long, and a cached token is accepted even after its own ``exp``.

Twin (``fixed=True``): the cache lives 10 seconds (or ``ttl``) and never outlives the token's
``exp``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from jitchaos.known_bugs._service import introspect, scopes_of, service, session_context

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(
    *,
    idp_url: str,
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
    client: tuple[str, str] = ("machine-api", "machine-api-secret"),
    ttl: float | None = None,
) -> web.Application:
    if ttl is None:
        ttl = 10.0 if fixed else 300.0
    cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def check(token: str) -> frozenset[str] | None:
        hit = cache.get(token)
        if hit is None or now() - hit[0] >= ttl:
            answer = await introspect(app[SESSION], f"{idp_url}/introspect", token, client)
            cache[token] = hit = (now(), answer)
        answer = hit[1]
        if answer.get("active") is not True:
            return None
        if fixed and now() >= answer.get("exp", 0):
            return None
        return scopes_of(answer)

    app = service(check)
    session_context(app, SESSION)
    return app
