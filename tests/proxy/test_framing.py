"""Request framing pinned on both listeners that read raw client bytes: the IdP side's lean
server and the service side. Each smuggling shape (RFC 9112 §6, §11.2) is refused with 400 and
the connection closed, and the handler (the upstream, the service) never sees a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from jitchaos import ManualClock
from jitchaos.proxy import ChaosProxy
from jitchaos.proxy._server import LeanServer, Request
from tests.common.idp import standard_config

CASES = {
    "Content-Length and Transfer-Encoding": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two Content-Lengths": b"POST /t HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n"
    b"Content-Length: 5\r\n\r\nabcde",
    "the same Content-Length twice": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "a signed Content-Length": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Content-Length: +3\r\n\r\nabc",
    "a Content-Length list": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Content-Length: 3, 3\r\n\r\nabc",
    "chunked not the last coding": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "an unknown coding": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "space before the colon": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "Transfer-Encoding in HTTP/1.0": b"POST /t HTTP/1.0\r\nHost: {host}\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET /t HTTP/1.1\r\nHost: {host}\r\nX-A: a\r\n b\r\n\r\n",
    "bare LF": b"GET /t HTTP/1.1\nHost: {host}\n\n",
    "bare CR": b"GET /t HTTP/1.1\rHost: {host}\r\r\n",
    "NUL in a value": b"GET /t HTTP/1.1\r\nHost: {host}\r\nX-A: a\x00b\r\n\r\n",
    "a chunk size that is not hex": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3g\r\nabc\r\n0\r\n\r\n",
    "chunks ended by bare LF": b"POST /t HTTP/1.1\r\nHost: {host}\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "a space in a field name": b"GET /t HTTP/1.1\r\nHost: {host}\r\nX A: b\r\n\r\n",
}
# llhttp takes any 64-bit chunk size and would wait for its bytes.
ABSURD_CHUNK = (
    b"POST /t HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"FFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"
)

Listener = tuple[int, list[str]]


async def send(port: int, raw: bytes) -> bytes:
    """Send ``raw`` and read until the server closes (5 s at most: a hang fails)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw.replace(b"{host}", b"127.0.0.1:%d" % port))
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(-1), 5)
    finally:
        writer.close()


@asynccontextmanager
async def idp_side() -> AsyncIterator[Listener]:
    seen: list[str] = []

    async def handler(request: Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="handled")

    server = LeanServer(handler, client_max_size=1 << 20)
    port = await server.start("127.0.0.1", 0, None)
    try:
        yield port, seen
    finally:
        await server.stop()


@asynccontextmanager
async def service_side() -> AsyncIterator[Listener]:
    seen: list[str] = []

    async def service(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="handled")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", service)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    proxy = ChaosProxy(standard_config(), services={"api": url}, clock=ManualClock())
    await proxy.start("127.0.0.1", 0)
    try:
        port = int(proxy.service_url("api").rsplit(":", 1)[1].rstrip("/"))
        yield port, seen
    finally:
        await proxy.stop()
        await runner.cleanup()


SIDES = {"IdP side": idp_side, "service side": service_side}


@pytest.mark.parametrize("side", list(SIDES))
@pytest.mark.parametrize("case", list(CASES))
async def test_each_smuggling_shape_is_refused_and_the_connection_closed(
    side: str, case: str
) -> None:
    async with SIDES[side]() as (port, seen):
        answer = await send(port, CASES[case])
        assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:200]
        assert b"handled" not in answer
        assert seen == []
        # The listener keeps serving well-formed requests.
        fine = await send(port, b"GET /fine HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        assert b"handled" in fine
        assert seen == ["/fine"]


@pytest.mark.parametrize(
    ("side", "status", "words"),
    [
        # Over the IdP side's body limit: too large, in OAuth's words where a handler answers.
        ("IdP side", b"413", b"a chunk of 18446744073709551615 bytes makes the body over"),
        # The service side streams any size, but not a chunk of 16 EiB: the client's body
        # cannot be read, and no service is blamed.
        ("service side", b"400", b"a chunk of 18446744073709551615 bytes is over the"),
    ],
)
async def test_an_absurd_chunk_size_is_refused_at_once(
    side: str, status: bytes, words: bytes
) -> None:
    """llhttp takes a chunk size up to 2**64 and waits for its bytes (issue #20): both
    listeners now refuse it at once (send() fails a wait of 5 s) and close."""
    async with SIDES[side]() as (port, seen):
        answer = await send(port, ABSURD_CHUNK)
        assert answer.split(b"\r\n", 1)[0].split()[1] == status, answer[:200]
        assert words in answer
        assert seen == []
        # A chunk that is large but sane is still streamed as it comes.
        fine = await send(
            port,
            b"POST /fine HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        assert b"handled" in fine
        assert seen == ["/fine"]
