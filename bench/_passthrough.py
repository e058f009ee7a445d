"""The baseline: a bare aiohttp reverse proxy, what any aiohttp proxy starts from.

One client session (connection reuse), request and response bodies read whole, hop-by-hop
headers dropped, the default asyncio event loop.

With ``--sign`` it also does per token response what re-signing must: verify the upstream's
access token against the upstream's JWKS (PyJWT, signature and issuer: a proxy never re-mints a
token it has not verified) and make one RS256 signature (PyJWT, 2048-bit key), thrown away: the
re-signing budget, "the pass-through's CPU plus the upstream check and one signature", measured
under the same load as everything else rather than added from an idle measurement.

Usage: python -m bench._passthrough PORT UPSTREAM_URL [--sign]   (prints "ready")
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    sign = "--sign" in sys.argv[3:]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "svc", "scope": "read", "iat": 0, "exp": 1}

    async def serve() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with session.get(upstream + "/.well-known/openid-configuration") as answer:
            issuer = (await answer.json())["issuer"]
        async with session.get(upstream + "/jwks") as answer:
            upstream_keys = {k["kid"]: jwt.PyJWK(k) for k in (await answer.json())["keys"]}

        async def forward(request: web.Request) -> web.Response:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
            async with session.request(
                request.method,
                upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as answer:
                body = await answer.read()
                if sign and request.path == "/token" and answer.status == 200:
                    token = json.loads(body)["access_token"]
                    kid = jwt.get_unverified_header(token)["kid"]
                    jwt.decode(
                        token,
                        upstream_keys[kid],
                        algorithms=["RS256"],
                        issuer=issuer,
                        options={"verify_exp": False, "verify_aud": False},
                    )
                    jwt.encode(claims, key, algorithm="RS256")
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP}
                return web.Response(status=answer.status, body=body, headers=kept)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
