"""A minimal, fast OpenID provider for the benchmark: discovery, JWKS, and a token endpoint that
hands out tokens from a pool minted at start (RS256), so the upstream's own signing cost stays
out of the numbers and every token it issues in a round is distinct.

Usage: python -m bench._upstream PORT POOL_SIZE   (prints "ready" when listening)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "http://127.0.0.1:{port}"


def _mint(args: tuple[bytes, str, str, int, int]) -> list[bytes]:
    pem, kid, issuer, start, count = args
    key = serialization.load_pem_private_key(pem, password=None)
    now = int(time.time())
    bodies = []
    for i in range(start, start + count):
        token = jwt.encode(
            {
                "iss": issuer,
                "sub": "svc",
                "aud": "jitchaos",
                "client_id": "svc",
                "scope": "read write",
                "iat": now,
                "exp": now + 3600,
                "jti": f"t{i}",
            },
            key,  # type: ignore[arg-type]
            algorithm="RS256",
            headers={"kid": kid, "typ": "at+jwt"},
        )
        bodies.append(
            json.dumps(
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": "read write",
                }
            ).encode()
        )
    return bodies


def main() -> None:
    port, pool_size = int(sys.argv[1]), int(sys.argv[2])
    issuer = ISSUER.format(port=port)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="bench", alg="RS256", use="sig")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    half = pool_size // 2
    with ProcessPoolExecutor(2) as pool:
        parts = pool.map(
            _mint,
            [(pem, "bench", issuer, 0, half), (pem, "bench", issuer, half, pool_size - half)],
        )
        bodies = [body for part in parts for body in part]
    next_token = iter(range(10**12))

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(
            {"issuer": issuer, "token_endpoint": f"{issuer}/token", "jwks_uri": f"{issuer}/jwks"}
        )

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    async def token(request: web.Request) -> web.Response:
        await request.read()
        body = bodies[next(next_token) % len(bodies)]
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_post("/token", token)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
