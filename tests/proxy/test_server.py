"""The IdP side's lean server, spoken to byte for byte: keep-alive, HTTP/1.0, pipelining,
HEAD, Expect, chunked bodies, and the refusals (400, 413, 500)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from jitchaos.proxy._server import LeanServer, Request


async def echo(request: Request) -> web.Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/slow":
        await asyncio.sleep(0.05)
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": (await request.read()).decode(),
            "type": request.content_type,
            "host": request.host,
        }
    )


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    server = LeanServer(echo, client_max_size=1024)
    port = await server.start("127.0.0.1", 0, None)
    try:
        yield port
    finally:
        await server.stop()


async def exchange(port: int, raw: bytes, *, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        if until_close:
            return await asyncio.wait_for(reader.read(-1), 5)
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def test_keep_alive_pipelining_in_order() -> None:
    async with serving() as port:
        answer = await exchange(
            port,
            b"GET /slow?a=1&b=x+y HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /token HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded"
            b"; charset=utf-8\r\nContent-Length: 3\r\n\r\na=b"
            b"GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
    parts = answer.split(b"HTTP/1.1 200 OK\r\n")
    assert len(parts) == 4
    assert b'"path": "/slow"' in parts[1]
    assert b'"query": {"a": "1", "b": "x y"}' in parts[1]
    assert b'"body": "a=b"' in parts[2]
    assert b'"type": "application/x-www-form-urlencoded"' in parts[2]
    assert b"Connection: close" in parts[3]
    assert b"Date: " in parts[1]


async def test_http10_head_chunked_and_expect() -> None:
    async with serving() as port:
        answer = await exchange(port, b"GET /old HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close" in answer
        answer = await exchange(
            port,
            b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            until_close=False,
        )
        assert b"Connection: keep-alive" in answer
        answer = await exchange(port, b"HEAD /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Content-Length: " in head
        assert body == b""
        answer = await exchange(
            port,
            b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close"
            b"\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        assert b'"body": "abc"' in answer
        answer = await exchange(
            port,
            b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nok",
        )
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


async def test_refusals_close_the_connection() -> None:
    async with serving() as port:
        answer = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"Connection: close" in answer
        answer = await exchange(
            port, b"POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
        )
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        answer = await exchange(
            port,
            b"POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"x" * 2048
            + b"\r\n0\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 413 ")
        answer = await exchange(port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n", until_close=False)
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        # The server still serves after all of that.
        answer = await exchange(
            port, b"GET /fine HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
