"""The proxy's lean upstream client against servers that answer byte for byte as written here:
every framing an IdP may use, keep-alive reuse, stale connections, timeouts, garbage and TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from yarl import URL

from jitchaos.proxy._client import ConnectFailed, HttpClient, ProtocolFailed
from tests.common.tls import contexts

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(
    handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw server; yields its base URL and the number of requests each connection carried."""
    carried: list[int] = []

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        carried.append(0)
        index = len(carried) - 1
        try:
            while await _read_request(reader):
                carried[index] += 1
                await handler(reader, writer)
                if writer.is_closing():
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield f"{scheme}://{'localhost' if ssl_context else '127.0.0.1'}:{port}", carried
    finally:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def answering(raw: bytes, *, close: bool = False) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()

    return handler


async def test_content_length_answers_reuse_one_connection() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    async with serving(answering(raw)) as (url, carried):
        client = HttpClient(timeout=5)
        for _ in range(3):
            answer = await client.request("POST", URL(url) / "token", {"X-A": "1"}, b"a=b")
            assert (answer.status, answer.body) == (200, b"{}")
            assert ("Content-Type", "application/json") in answer.headers
        await client.close()
    assert carried == [3]


async def test_chunked_answer_is_reassembled() -> None:
    raw = (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{"a\r\n5\r\n": 1}\r\n0\r\n\r\n'
    )
    async with serving(answering(raw)) as (url, carried):
        client = HttpClient(timeout=5)
        assert (await client.request("GET", URL(url), {})).body == b'{"a": 1}'
        assert (await client.request("GET", URL(url), {})).body == b'{"a": 1}'
        await client.close()
    assert carried == [2]


async def test_answer_framed_by_the_close_is_whole_and_not_reused() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    async with serving(answering(raw, close=True)) as (url, carried):
        client = HttpClient(timeout=5)
        assert (await client.request("GET", URL(url), {})).body == b"until the end"
        assert (await client.request("GET", URL(url), {})).body == b"until the end"
        await client.close()
    assert carried == [1, 1]


async def test_interim_answers_are_skipped_and_head_has_no_body() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nmade"
    async with serving(answering(raw)) as (url, _):
        client = HttpClient(timeout=5)
        answer = await client.request("POST", URL(url), {}, b"x")
        assert (answer.status, answer.body) == (201, b"made")
        await client.close()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    async with serving(answering(head)) as (url, _):
        client = HttpClient(timeout=5)
        answer = await client.request("HEAD", URL(url), {})
        assert (answer.status, answer.body) == (200, b"")
        await client.close()


async def test_stale_keep_alive_connection_is_retried_only_when_safe() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    answered = 0

    async def once_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal answered
        answered += 1
        writer.write(raw)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # after the answer, without saying Connection: close

    async with serving(once_per_connection) as (url, _):
        client = HttpClient(timeout=5)
        assert (await client.request("GET", URL(url), {})).body == b"ok"
        await asyncio.sleep(0.2)
        assert (await client.request("GET", URL(url), {})).body == b"ok"  # pool saw the close
        await client.close()
    assert answered == 2


async def test_timeout_garbage_refusal_and_early_close() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with serving(silent) as (url, _):
        client = HttpClient(timeout=0.1)
        with pytest.raises(TimeoutError):
            await client.request("GET", URL(url), {})
        await client.close()
    async with serving(answering(b"SMTP ready\r\n\r\n")) as (url, _):
        client = HttpClient(timeout=5)
        with pytest.raises(ProtocolFailed, match="malformed"):
            await client.request("GET", URL(url), {})
        await client.close()
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with serving(answering(cut, close=True)) as (url, _):
        client = HttpClient(timeout=5)
        with pytest.raises(ProtocolFailed, match="mid-answer"):
            await client.request("GET", URL(url), {})
        await client.close()
    async with serving(answering(b"", close=True)) as (url, _):
        client = HttpClient(timeout=5)
        with pytest.raises(ProtocolFailed, match="without answering"):
            await client.request("POST", URL(url), {}, b"x")
        await client.close()
    client = HttpClient(timeout=5)
    with pytest.raises(ConnectFailed):
        await client.request("GET", URL(url), {})  # the server is gone
    with pytest.raises(ValueError, match="cannot be sent"):
        await client.request("GET", URL(url), {"X-Evil": "a\r\nInjected: 1"})
    await client.close()


async def test_https_with_a_ca_bundle() -> None:
    server_context, trusting = contexts("localhost")
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"
    async with serving(answering(raw), server_context) as (url, carried):
        client = HttpClient(timeout=5, ssl_context=trusting)
        for _ in range(2):
            assert (await client.request("GET", URL(url), {})).body == b"secret"
        await client.close()
        untrusting = HttpClient(timeout=5)  # the system store does not know this CA
        with pytest.raises(ConnectFailed):
            await untrusting.request("GET", URL(url), {})
        await untrusting.close()
    assert carried[0] == 2


async def test_an_answer_body_over_the_cap_is_refused_before_it_is_all_read() -> None:
    sent: list[int] = []

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(1024):  # 64 MiB if nobody stops it
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent.append(len(chunk))
        except ConnectionError:
            return

    async with serving(endless) as (url, _):
        client = HttpClient(timeout=10)
        with pytest.raises(ProtocolFailed, match="body is over 16777216 bytes"):
            await client.request("GET", URL(url), {})
        await client.close()
    assert sum(sent) < 48 * 1024 * 1024  # refused while it was still sending
