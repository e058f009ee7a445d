"""A permission cache keyed by the OAuth client, not the user: the first user who calls through
an app decides what every later user of that app may do. Bob, who may only read, writes with
the permissions Alice had (a cross-principal leak).

Twin (``fixed=True``): the cache is keyed by the token itself and lives 10 seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
) -> web.Application:
    cache: dict[str, tuple[float, frozenset[str] | None]] = {}

    async def check(token: str) -> frozenset[str] | None:
        if fixed:
            hit = cache.get(token)
            if hit is None or now() - hit[0] >= 10:
                answer = await introspect(app[SESSION], f"{idp_url}/introspect", token, client)
                active = answer.get("active") is True
                cache[token] = hit = (now(), scopes_of(answer) if active else None)
            return hit[1]
        answer = await introspect(app[SESSION], f"{idp_url}/introspect", token, client)
        if answer.get("active") is not True:
            return None
        key = str(answer.get("client_id"))  # the bug: one entry for every user of the app
        if key not in cache or now() - cache[key][0] >= 300:
            cache[key] = (now(), scopes_of(answer))
        return cache[key][1]

    app = service(check)
    session_context(app, SESSION)
    return app
