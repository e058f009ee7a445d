"""The baseline: a bare aiohttp reverse proxy, what any aiohttp proxy starts from.

One client session (connection reuse), request and response bodies read whole, hop-by-hop
headers dropped, the default asyncio event loop.

Usage: python -m bench._passthrough PORT UPSTREAM_URL   (prints "ready")
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]

    async def serve() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def forward(request: web.Request) -> web.Response:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
            async with session.request(
                request.method,
                upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as answer:
                body = await answer.read()
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
