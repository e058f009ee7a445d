"""Chunk sizes llhttp would wait on: a request that declares a chunk of 2**64 - 1 bytes and
sends three is parsed as the start of that chunk, and the server waits for the rest.

llhttp reports that a chunk began (``on_chunk_header``) but not its size. A chunk begun in one
piece of the stream and not yet complete ends its size line just before the body bytes it has
delivered since, so the line can be read back from the piece (and the tail of the previous
one, where the line may have begun). The IdP side's server does this on its own parser;
:class:`ChunkGuard` does it beside aiohttp's parser on the service side and the control API
(:class:`GuardedServer`, :class:`GuardedAppRunner`).
"""

from __future__ import annotations

from typing import Any

import httptools
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

__all__ = [
    "ChunkGuard",
    "GuardedAppRunner",
    "GuardedServer",
    "keep_tail",
    "open_chunk_size",
]

TAIL = 256
"""How much of a line not yet ended to keep, from its start: a chunk-size line may straddle
pieces, and its size is its first hex digits (extensions, a signature, may follow)."""


def keep_tail(tail: bytes, data: bytes) -> bytes:
    """The start (up to :data:`TAIL` bytes) of the line that ``data`` leaves unended."""
    cut = data.rfind(b"\n")
    if cut >= 0:
        return data[cut + 1 : cut + 1 + TAIL]
    return tail if len(tail) >= TAIL else (tail + data)[:TAIL]


def open_chunk_size(tail: bytes, data: bytes, delivered: int) -> int | None:
    """The size of the chunk whose size line ended in ``data`` and whose bytes ``delivered``
    so far close ``data``; None when the line is not where it should be (then llhttp, which
    read it, judges the framing)."""
    stream = tail + data  # tail: the line's start when it began in an earlier piece
    end = len(stream) - delivered - 2  # the line's CRLF
    start = stream.rfind(b"\n", 0, max(end, 0)) + 1
    digits = stream[start : max(end, start)].split(b";", 1)[0].split(b"\r", 1)[0].strip()
    try:
        return int(digits, 16)
    except ValueError:
        return None


class ChunkGuard:
    """A framing-only llhttp parser fed the same bytes as a server's own: :meth:`feed` says
    when a chunked request declares a chunk of more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parser = httptools.HttpRequestParser(self)
        self._dead = False  # malformed or upgraded: the server's own parser judges it
        self._tail = b""
        self._begun = False
        self._open = False
        self._bytes = 0

    def feed(self, data: bytes) -> str | None:
        """Why the request in progress must be refused, or None."""
        if self._dead:
            return None
        self._begun = False
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserUpgrade, httptools.HttpParserError):
            self._dead = True
            return None
        tail, self._tail = self._tail, keep_tail(self._tail, data)
        if not (self._begun and self._open):
            return None
        size = open_chunk_size(tail, data, self._bytes)
        if size is None or size <= self._limit:
            return None
        return f"a chunk of {size} bytes is over the {self._limit} this proxy takes"

    def on_message_begin(self) -> None:
        self._open = False

    def on_chunk_header(self) -> None:
        self._open, self._bytes, self._begun = True, 0, True

    def on_chunk_complete(self) -> None:
        self._open = False

    def on_body(self, body: bytes) -> None:
        self._bytes += len(body)


class _GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a :class:`ChunkGuard` beside its parser: a request
    declaring an absurd chunk gets its body stream failed and ended, so the handler answers
    as for any body the client garbled (400), and no lingering read waits for the rest."""

    def __init__(self, *args: Any, chunk_limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = ChunkGuard(chunk_limit)
        self._reading: Any = None  # the body stream of the request being read
        self._tripped = False

    def data_received(self, data: bytes) -> None:
        if self._tripped:
            return  # the stream cannot be read on; the answer closes the connection
        why = self._guard.feed(data)
        count = self._request_count
        super().data_received(data)
        if self._request_count > count and self._messages:
            self._reading = self._messages[-1][1]  # appended just now: the newest request
        if why is not None:
            self._tripped = True
            self.close()  # once the answer is out: the stream cannot be read on
            if self._reading is not None:
                self._reading.set_exception(RequestPayloadError(why))
                self._reading.feed_eof()


class GuardedServer(web.Server):
    """``aiohttp.web.Server`` whose connections refuse chunks over ``chunk_limit`` bytes."""

    def __init__(self, *args: Any, chunk_limit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.chunk_limit = chunk_limit

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, chunk_limit=self.chunk_limit, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """``aiohttp.web.AppRunner`` whose server is a :class:`GuardedServer` (chunks over the
    application's ``client_max_size`` are refused)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        guarded = GuardedServer.__new__(GuardedServer)
        guarded.__dict__.update(server.__dict__)
        guarded.chunk_limit = self._app._client_max_size
        return guarded
