"""A client that refreshes only on its own timer (``expires_in``) and never on a 401: when the
IdP ends a token early (revocation, a session ended elsewhere), it keeps presenting the dead
token until its timer runs out, and every call fails meanwhile.

Twin (``fixed=True``): a 401 from the API refreshes once (logging in again when the refresh
token is refused too) and retries. Both refresh one request at a time (a lock), so this bug is
the only one.
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
        async with lock:
            if tokens.access != seen:
                return  # another request already renewed it
            if tokens.refresh is None or not await refresh(
                app[SESSION], idp_url, client, now(), tokens
            ):
                await login(app[SESSION], idp_url, client, now(), tokens)

    async def answer(request: web.Request, call: Call) -> tuple[int, bytes]:
        if tokens.access is None or now() >= tokens.expires_at:
            await renew(tokens.access)
        seen = tokens.access
        assert seen is not None
        status, body = await call(request.method, request.path, seen)
        if status == 401 and fixed:
            tokens.expired(seen)  # never present it again, even if renewing fails now
            await renew(seen)
            assert tokens.access is not None
            status, body = await call(request.method, request.path, tokens.access)
        return status, body

    app = gateway(downstream, answer)
    return app
