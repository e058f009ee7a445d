"""A permission cache keyed by subject: the first introspection of a user's token decides that
user's permissions for good. Narrowing a role is ignored until restart (and so is widening).

Twin (``fixed=True``): permissions come from each token's own, current introspection.
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
    permissions: dict[str, frozenset[str]] = {}

    async def check(token: str) -> frozenset[str] | None:
        answer = await introspect(app[SESSION], f"{idp_url}/introspect", token, client)
        if answer.get("active") is not True:
            return None
        current = scopes_of(answer)
        if fixed:
            return current
        # Keyed by who holds it: the subject, or the client of a client_credentials token
        # (some IdPs, node-oidc-provider among them, introspect those without a sub).
        holder = str(answer.get("sub") or answer.get("client_id"))
        return permissions.setdefault(holder, current)  # the bug

    app = service(check)
    session_context(app, SESSION)
    return app
