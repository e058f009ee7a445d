"""A lean HTTP/1.1 keep-alive client for the proxy's IdP side, on asyncio protocols.

Every token response crosses the proxy, so the upstream round trip is on the hot path. The
proxy's needs there are narrow: send one small request, read the whole answer, reuse the
connection. ``aiohttp.ClientSession`` serves far more (redirects, cookies, streaming, traces,
auto headers), and its per-request bookkeeping cost about a third of the proxy's CPU per token
response. This client keeps only what the IdP side uses: a pool of idle keep-alive connections
per origin, answers framed by Content-Length, chunked transfer coding or the connection's end,
one overall timeout per request, and TLS through an :class:`ssl.SSLContext`.

Responses are parsed by ``httptools`` (llhttp, the parser Node.js uses, from the authors of
uvloop) rather than by hand: framing, chunked decoding and keep-alive rules are where a
hand-written parser goes wrong, and llhttp does them in C.

The service side keeps ``aiohttp``: it streams bodies of any size, which this client never does.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import cast

import attrs
import httptools
from yarl import URL

__all__ = ["Answer", "ConnectFailed", "HttpClient", "ProtocolFailed"]

# RFC 9110 §9.2.2: only these may be resent when a reused connection dies before answering.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Framing is the client's own business: a caller's values for these are dropped.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default)
_MAX_IDLE = 64  # idle connections kept per origin; more are closed
_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 16 * 1024 * 1024
"""The longest answer body read (an IdP answers kilobytes; a login page a few hundred): an
upstream that sends more is refused with 502, not buffered until memory runs out."""


class ConnectFailed(Exception):
    """No connection to the origin (refused, unresolvable, TLS handshake or certificate)."""

    def __init__(self, os_error: OSError) -> None:
        super().__init__(str(os_error))
        self.os_error = os_error


class ProtocolFailed(Exception):
    """The origin closed the connection early or answered something that is not HTTP/1.1."""


@attrs.frozen
class Answer:
    """A whole response: status, header fields in order (names as sent), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Disconnected(ProtocolFailed):
    """The connection ended before any byte of the answer arrived (a reused one may be stale)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._head_only = False
        self._reusable = False
        self._started = False
        self._headers_done = False
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # nobody asked: the stream is unusable
            self.close()
            return
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolFailed("the upstream switched protocols"))
        except httptools.HttpParserError as error:
            # A limit a callback enforced is the reason; anything else, llhttp's.
            cause = error.__context__
            self._fail(
                cause
                if isinstance(cause, ProtocolFailed)
                else ProtocolFailed(f"malformed answer: {error}")
            )

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_bytes = 0
        self._headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            raise ProtocolFailed("the answer's header section is too large")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()
        if self._head_only and self._status >= 200:
            # llhttp cannot be told that a HEAD answer has no body: take the head, and do not
            # reuse a connection whose parser would wait for one.
            self._reusable = False
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > _MAX_BODY_BYTES:
            raise ProtocolFailed(f"the answer's body is over {_MAX_BODY_BYTES} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            return  # an interim answer (100 Continue): the final one follows
        self._reusable = self._parser.should_keep_alive()
        self._finish()

    # The exchange.

    async def exchange(self, request: bytes, *, head_only: bool, deadline: float) -> Answer:
        """Send ``request``; the answer, or ``TimeoutError`` once the loop's clock passes
        ``deadline`` (one timer handle: cheaper than a timeout context per request)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._head_only = head_only
        self._reusable = False
        self._started = False
        timer = loop.call_at(deadline, self._time_out, waiter)
        self.transport.write(request)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _time_out(self, waiter: asyncio.Future[Answer]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    def settle(self) -> bool:
        """End the exchange: whether the connection may carry another (a whole answer came,
        and both sides keep the connection open)."""
        waiter, self._waiter = self._waiter, None
        answered = (
            waiter is not None
            and waiter.done()
            and not waiter.cancelled()
            and waiter.exception() is None
        )
        return answered and self._reusable and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            headers = [
                (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
                for name, value in self._headers
            ]
            waiter.set_result(Answer(self._status, headers, b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        self._reusable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def _ended(self, exc: Exception | None) -> None:
        """The connection ended: an answer framed by the close is complete, anything else is
        cut short."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        ):
            self._reusable = False
            self._finish()
            return
        why = f": {exc}" if exc is not None else ""
        if not self._started:
            self._fail(_Disconnected(f"the upstream closed the connection without answering{why}"))
        else:
            self._fail(ProtocolFailed(f"the upstream closed the connection mid-answer{why}"))


class HttpClient:
    """Pooled keep-alive HTTP/1.1 requests whose answers are read whole.

    ``timeout`` bounds each request from connecting to the last byte (``TimeoutError``).
    ``ssl_context`` verifies https origins (None: the system's default trust store).
    """

    def __init__(self, *, timeout: float, ssl_context: ssl.SSLContext | None = None) -> None:
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    async def request(
        self, method: str, url: URL, headers: Mapping[str, str], body: bytes = b""
    ) -> Answer:
        """Send one request and read the whole answer. Raises :class:`ConnectFailed`,
        :class:`ProtocolFailed` or ``TimeoutError``."""
        if self._closed:
            raise RuntimeError("the client is closed")
        host, port = url.raw_host, url.port
        if not host or port is None or url.scheme not in ("http", "https"):
            raise ValueError(f"{url} is not an absolute http(s) URL")
        key = (url.scheme, host, port)
        request = _encode(method, url, headers, body)
        retry = method in _IDEMPOTENT
        deadline = asyncio.get_running_loop().time() + self._timeout
        while True:
            connection = self._take_idle(key)
            reused = connection is not None
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(key)
            try:
                answer = await connection.exchange(
                    request, head_only=method == "HEAD", deadline=deadline
                )
            except _Disconnected:
                if reused and retry:
                    retry = False
                    continue
                raise
            finally:
                self._release(key, connection)
            return answer

    async def close(self) -> None:
        """Close every idle connection; later requests fail."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        connections = self._idle.get(key)
        if not connections:
            return None
        oldest = time.monotonic() - _KEEPALIVE
        while connections:
            connection = connections.pop()
            if not connection.closed and connection.idle_since >= oldest:
                return connection
            connection.close()
        return None

    def _release(self, key: tuple[str, str, int], connection: _Connection) -> None:
        """Pool the connection after a complete answer; close it after anything else (an
        error, a timeout or a cancellation leaves its stream in an unknown state)."""
        if connection.settle() and not self._closed:
            connections = self._idle.setdefault(key, [])
            if len(connections) < _MAX_IDLE:
                connection.idle_since = time.monotonic()
                connections.append(connection)
                return
        connection.close()

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                _Connection,
                host,
                port,
                ssl=context,
                server_hostname=host.rstrip(".") if context is not None else None,
            )
        except OSError as error:  # refused, unresolvable, and ssl.SSLError too
            raise ConnectFailed(error) from None
        return connection


def _encode(method: str, url: URL, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request's bytes: request line, Host, the caller's fields, framing, body."""
    lines = [f"{method} {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host_port_subcomponent}\r\n"]
    accept = False
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _OWN_HEADERS:
            continue
        accept = accept or lowered == "accept"
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}\r\n")
    if not accept:
        lines.append("Accept: */*\r\n")  # what aiohttp sent, and some servers negotiate on
    if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS", "TRACE"):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape") + body
