"""The IdP side's lean server, spoken to byte for byte: keep-alive, HTTP/1.0, pipelining,
HEAD, Expect, chunked bodies, TLS, idle connections, and the refusals (400, 413, 414, 431,
500), each answered as the caller's refusal says."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from jitchaos.proxy import _server
from jitchaos.proxy._server import LeanServer, Reply, Request
from tests.common.tls import contexts

BIG = 64 * 1024


async def echo(request: Request) -> web.Response | Reply:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/unsendable":
        return web.Response(text="x", headers={"X-Bad": "a\r\nInjected: yes"})
    if request.path == "/bad-name":
        return Reply(200, [("X-Bad: Injected", "yes")], b"x")
    if request.path == "/nul":
        return Reply(200, [("X-Nul", "a\x00b")], b"x")
    if request.path == "/slow":
        await asyncio.sleep(0.05)
    if request.path == "/big":
        return web.Response(body=b"b" * BIG)
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": (await request.read()).decode(),
            "type": request.content_type,
            "host": request.host,
            "url": str(request.url),
            "sockname_port": request.sockname[1] if request.sockname else None,
        }
    )


def as_json(status: int, why: str) -> web.Response:
    return web.json_response({"status": status, "why": why}, status=status)


@asynccontextmanager
async def serving(
    ssl_context: ssl.SSLContext | None = None, *, refusal: _server.Refusal | None = None
) -> AsyncIterator[tuple[LeanServer, int]]:
    server = LeanServer(echo, client_max_size=1024, refusal=refusal)
    port = await server.start("127.0.0.1", 0, ssl_context)
    try:
        yield server, port
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
        await writer.wait_closed()


def body_of(answer: bytes) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(answer.partition(b"\r\n\r\n")[2])
    return decoded


async def test_keep_alive_pipelining_in_order() -> None:
    async with serving() as (_, port):
        answer = await exchange(
            port,
            b"GET /slow?a=1&b=x+y HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /token HTTP/1.1\r\nHost: h\r\nContent-Type: Application/X-WWW-Form-Urlencoded"
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
    assert b"Connection: close" not in parts[1] + parts[2]
    assert b"Date: " in parts[1]


async def test_many_pipelined_requests_pause_reading_and_all_get_answers() -> None:
    count = 3 * _server._MAX_PIPELINED
    async with serving() as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"
            + b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n" * (count - 1)
        )
        await writer.drain()
        await asyncio.sleep(0.01)  # all parsed while the first (slow) one is answered
        (connection,) = server.connections
        assert connection._paused  # reading stops until the queue shortens
        # Sent after the pause: read only because reading resumes.
        writer.write(b"GET /end HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(-1), 10)
        writer.close()
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == count + 1
    last = json.loads(answer.rpartition(b"\r\n\r\n")[2])
    assert (last["path"], last["url"], last["sockname_port"]) == ("/end", "http://h/end", port)


async def test_http10_head_chunked_and_expect() -> None:
    async with serving() as (_, port):
        answer = await exchange(port, b"GET /old HTTP/1.0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close" in answer
        # HTTP/1.0 may leave Host out: the listener is the authority it asked.
        assert body_of(answer)["url"] == f"http://127.0.0.1:{port}/old"
        answer = await exchange(port, b"GET /new HTTP/1.1\r\n\r\n")  # 1.1 may not
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert answer.endswith(b"an HTTP/1.1 request needs a Host header")
        assert b"Connection: close" in answer
        answer = await exchange(
            port,
            b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            until_close=False,
        )
        assert b"Connection: keep-alive" in answer
        answer = await exchange(port, b"HEAD /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        get = await exchange(port, b"GET /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        # What the GET carries, plus one: the echo says "HEAD", a letter longer than "GET".
        length = len(get.partition(b"\r\n\r\n")[2]) + 1
        assert f"Content-Length: {length}".encode() in head
        assert body == b""
        answer = await exchange(
            port,
            b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close"
            b"\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        assert body_of(answer)["body"] == "abc"
        answer = await exchange(
            port,
            b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nok",
        )
        assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


async def test_absolute_form_names_its_authority_and_percent_paths_are_decoded() -> None:
    async with serving() as (_, port):
        answer = await exchange(
            port,
            b"GET http://elsewhere:9/a%20b?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
    seen = body_of(answer)
    assert (seen["host"], seen["path"], seen["query"]) == ("elsewhere:9", "/a b", {"q": "1"})


async def test_refusals_close_the_connection_and_the_server_keeps_serving() -> None:
    async with serving() as (_, port):
        answer = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"Connection: close" in answer
        # Refused on Content-Length alone: the client gets its answer without sending the body.
        answer = await exchange(
            port, b"POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        assert answer.endswith(b"the request body is over 1024 bytes")
        answer = await exchange(
            port,
            b"POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"x" * 2048
            + b"\r\n0\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 413 ")
        answer = await exchange(port, b"GET /" + b"u" * 70000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 414 ")
        answer = await exchange(
            port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"v" * 70000 + b"\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 431 ")
        answer = await exchange(port, b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\n", until_close=False)
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        answer = await exchange(
            port, b"GET /unsendable HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"Injected" not in answer
        for path in (b"/bad-name", b"/nul"):  # a name that is no token, a NUL in a value
            answer = await exchange(
                port, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), answer
            assert b"Injected" not in answer
            assert b"\x00" not in answer
        answer = await exchange(
            port, b"GET /fine HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_refusals_read_as_the_caller_says() -> None:
    async with serving(refusal=as_json) as (_, port):
        answer = await exchange(
            port, b"POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert body_of(answer) == {"status": 413, "why": "the request body is over 1024 bytes"}
        answer = await exchange(
            port, b"GET /boom HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert body_of(answer)["status"] == 500
        assert "handler bug" not in answer.decode()  # the log has it; the client does not


async def test_idle_connections_are_closed_and_busy_ones_kept() -> None:
    async with serving() as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
        (connection,) = server.connections
        connection.close_if_idle(before=connection.idle_since)  # not idle long enough
        assert server.connections == {connection}
        connection.close_if_idle(before=connection.idle_since + 1)
        await asyncio.wait_for(reader.read(-1), 5)  # returns only once the server has closed
        assert reader.at_eof()
        writer.close()
        await asyncio.sleep(0)
        assert not server.connections


async def test_tls_listener() -> None:
    served, client = contexts("127.0.0.1")
    async with serving(served) as (server, port):
        assert server.scheme == "https"
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"GET /tls HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(-1), 5)
        writer.close()
    assert body_of(answer)["url"] == "https://h/tls"


async def test_a_client_that_does_not_read_holds_answers_back() -> None:
    """Without back-pressure every answer went into the write buffer: a client pipelining
    requests and never reading grew the proxy's memory without bound."""
    count = 300  # 300 x 64 KiB answers: far more than the kernel's socket buffers hold
    async with serving() as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n" * count)
        await writer.drain()
        await asyncio.sleep(0.3)
        (connection,) = server.connections
        transport = connection._transport
        assert transport is not None
        assert not connection._writable.is_set()
        assert transport.get_write_buffer_size() < 4 * BIG  # one answer over the high-water mark
        assert connection._paused  # and it stopped reading more requests
        writer.write(b"GET /end HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(-1), 30)  # reading lets it all through
        writer.close()
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == count + 1


async def test_interim_answers_and_upgrades() -> None:
    async with serving() as (_, port):
        # 100 Continue only when nothing is being answered: here it would be read as the
        # answer to the slow request before it.
        answer = await exchange(
            port,
            b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nok",
        )
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"100 Continue" not in answer
        answer = await exchange(
            port,
            b"POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        )
        assert b"100 Continue" not in answer  # never to HTTP/1.0 (RFC 9110 10.1.1)
        # curl --http2 on plain http asks to upgrade to h2c: llhttp would hand the body on
        # as the new protocol's bytes, and the handler would act on an empty request.
        answer = await exchange(
            port,
            b"POST /token HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
            b"Content-Length: 12\r\n\r\ngrant_type=x",
        )
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert answer.endswith(b"a request with a body cannot ask to Upgrade the connection")
        answer = await exchange(
            port, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"
        )
        assert answer.endswith(b"the request has more than one Host header")
        answer = await exchange(
            port, b"GET http://[::1]:8080/v6 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        assert (body_of(answer)["host"], body_of(answer)["url"]) == (
            "[::1]:8080",
            "http://[::1]:8080/v6",
        )
