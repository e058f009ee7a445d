"""A resource server on PyJWT's ``PyJWKClient`` with its defaults (key set cached 300 s, an
unknown kid refetched at most every 30 s).

Usage: python -m examples.stacks.pyjwt_service IDP PORT [--issuer ISS] [--audience AUD]
                                               [--leeway SECONDS]

``--leeway`` is the known bug this stack is tested with: a generous ``leeway`` (set "for clock
skew") honours a token that long after its ``exp``. Without it (PyJWT's default, 0) the service
is the correct twin.
"""

from __future__ import annotations

import argparse
import asyncio

import jwt
from aiohttp import web

from jitchaos.known_bugs._service import Unavailable, service


def make_app(
    idp_url: str, *, issuer: str | None = None, audience: str = "jitchaos", leeway: float = 0
) -> web.Application:
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
                audience=audience,
                issuer=issuer if issuer is not None else idp_url,
                leeway=leeway,
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.stacks.pyjwt_service")
    parser.add_argument("idp", help="the IdP URL its keys come from (/jwks)")
    parser.add_argument("port", type=int)
    parser.add_argument("--issuer", help="the tokens' iss (default: IDP)")
    parser.add_argument("--audience", default="jitchaos", help="the tokens' aud")
    parser.add_argument("--leeway", type=float, default=0.0, help="the bug: seconds past exp")
    args = parser.parse_args()
    app = make_app(
        args.idp.rstrip("/"), issuer=args.issuer, audience=args.audience, leeway=args.leeway
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
