"""A client whose concurrent requests each refresh on their own: when the token is refused (or
its timer ran out), every request in flight exchanges the same refresh token. The IdP's
refresh-token rotation sees reuse and revokes the whole grant, so the user is logged out.

Twin (``fixed=True``): one refresh at a time (a lock), and a request that waited for it uses
the token the other one got instead of refreshing again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from jitchaos.known_bugs._client import token_gateway


def make_app(
    *,
    idp_url: str,
    downstream: str,
    client: tuple[str, str],
    issuer: str | None = None,
    now: Callable[[], float] = time.time,
    fixed: bool = False,
) -> web.Application:
    return token_gateway(
        idp_url=idp_url,
        downstream=downstream,
        client=client,
        now=now,
        refresh_on_401=True,
        single_flight=fixed,  # the bug: each request in flight refreshes
    )
