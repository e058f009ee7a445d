"""A client that refreshes only on its own timer (``expires_in``) and never on a 401: when the
IdP ends a token early (revocation, a session ended elsewhere), it keeps presenting the dead
token until its timer runs out, and every call fails meanwhile.

Twin (``fixed=True``): a 401 from the API refreshes once (logging in again when the refresh
token is refused too) and retries. Both refresh one request at a time (a lock), so this bug is
the only one.
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
        refresh_on_401=fixed,  # the bug: a 401 changes nothing
        single_flight=True,
    )
