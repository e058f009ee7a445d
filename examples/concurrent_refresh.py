"""A client whose concurrent requests each refresh on their own: when the token is refused (or
its timer ran out), every request in flight exchanges the same refresh token. The IdP's
refresh-token rotation sees reuse and revokes the whole grant, so the user is logged out.

Twin (``fixed=True``): one refresh at a time (a lock), and a request that waited for it uses
the token the other one got instead of refreshing again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from examples._client import SESSION, Call, Tokens, gateway, login, refresh


def make_app(
    *,
    idp_url: str,
    downstream: str,
    client: tuple[str, str],
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
) -> web.Application:
    tokens = Tokens()
    lock = asyncio.Lock()

    async def renew(seen: str | None) -> None:
        if fixed:
            async with lock:
                if tokens.access != seen:
                    return  # another request already renewed it
                await exchange()
        else:
            await exchange()  # the bug: every request in flight exchanges the same token

    async def exchange() -> None:
        if tokens.refresh is None or not await refresh(
            app[SESSION], idp_url, client, now(), tokens
        ):
            await login(app[SESSION], idp_url, client, now(), tokens)

    async def answer(request: web.Request, call: Call) -> tuple[int, bytes]:
        if tokens.access is None:
            async with lock:
                if tokens.access is None:
                    await login(app[SESSION], idp_url, client, now(), tokens)
        elif now() >= tokens.expires_at:
            await renew(tokens.access)
        seen = tokens.access
        assert seen is not None
        status, body = await call(request.method, request.path, seen)
        if status == 401:
            tokens.expired(seen)  # never present it again, even if renewing fails now
            await renew(seen)
            assert tokens.access is not None
            status, body = await call(request.method, request.path, tokens.access)
        return status, body

    app = gateway(downstream, answer)
    return app
