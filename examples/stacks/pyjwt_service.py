"""A resource server on PyJWT's ``PyJWKClient`` with its defaults (key set cached 300 s, an
unknown kid refetched at most every 30 s): ``python -m examples.stacks.pyjwt_service IDP PORT``.
"""

from __future__ import annotations

import asyncio
import sys

import jwt
from aiohttp import web

from jitchaos.known_bugs._service import Unavailable, service


def make_app(idp_url: str) -> web.Application:
    keys = jwt.PyJWKClient(f"{idp_url}/jwks")  # the defaults, as most services use it

    async def check(token: str) -> frozenset[str] | None:
        try:
            key = await asyncio.to_thread(keys.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as error:
            raise Unavailable(str(error)) from None
        except jwt.PyJWTError:
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience="jitchaos",
                issuer=idp_url,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        return frozenset(str(claims.get("scope", "")).split())

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = service(check)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), print=None)
