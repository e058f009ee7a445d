"""A lean HTTP/1.1 server for the proxy's IdP side, on asyncio protocols and httptools.

Every token response crosses this listener. Under a load generator, aiohttp's low-level server
cost about 50 us of the proxy's CPU per re-signed token more than this one (`bench/`), which
is the difference between re-signing within "the pass-through's CPU plus one signature" and
not. The IdP side needs little of a general server: its requests are small and read whole, its
answers are built whole. This server parses with ``httptools`` (llhttp, the C parser Node.js
uses, as the upstream client in ``_client.py`` does), hands the IdP side a :class:`Request`
with the few ``aiohttp.web.BaseRequest`` attributes it reads, and writes the
``aiohttp.web.Response`` the handler returns as one buffer.

What it keeps of HTTP/1.1: keep-alive and ``Connection: close``, HTTP/1.0 clients, pipelined
requests (answered in order, reading paused while too many wait), ``Expect: 100-continue``,
chunked request bodies, HEAD, a body size limit (413, answered before the body is read when
Content-Length says so), oversized header sections (431), malformed requests (400, then the
connection closes: the stream cannot be trusted), idle connections closed after a while, TLS
through the ``ssl.SSLContext`` given. How each refusal reads is the caller's choice
(``refusal``), so the IdP side answers in OAuth's JSON. The service side and the control API
stay on aiohttp: they stream bodies of any size and route many paths.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from jitchaos.proxy._framing import keep_tail, open_chunk_size

__all__ = ["LeanServer", "Request"]

log = logging.getLogger("jitchaos.proxy")

Handler = Callable[["Request"], Awaitable["web.Response | Reply"]]
Refusal = Callable[[int, str], web.Response]
"""Builds the answer for a request the server itself refuses: (status, why)."""

_KEEPALIVE = 75.0  # seconds an idle connection stays open (aiohttp's default)
_MAX_HEADER_BYTES = 64 * 1024
_MAX_FIELD_BYTES = 8190
"""One header field (name and value) or the request target: aiohttp's servers (the embedded
IdP's, many upstreams') refuse a longer line with plain text and close; the proxy refuses it
first, in the caller's words (OAuth JSON on the IdP side)."""
_MAX_PIPELINED = 16  # requests waiting on one connection before reading pauses
_EMPTY_BODY = frozenset({204, 304})
_OWN_FIELDS = frozenset({"content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSENDABLE = re.compile(r"[\r\n\x00]")


class Reply:
    """An answer written as it is, without building an ``aiohttp.web.Response`` (3 us a token
    answer): a status, fields (the server adds Content-Length, Date and Connection) and a
    whole body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status, "")


_REASONS = {status.value: status.phrase for status in HTTPStatus}


class Request:
    """One request, read whole: the ``aiohttp.web.BaseRequest`` attributes the IdP side uses."""

    __slots__ = (
        "_query",
        "body",
        "headers",
        "host",
        "method",
        "path",
        "query_string",
        "raw_path",
        "scheme",
        "sockname",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: CIMultiDictProxy[str],
        body: bytes,
        host: str,
        scheme: str,
        sockname: tuple[str, int] | None,
        raw_path: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        """Decoded, without the query (as aiohttp's ``request.path``)."""
        self.raw_path = raw_path if raw_path is not None else path
        """As the client wrote it, percent escapes and dot segments kept (what is forwarded)."""
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.host = host
        """The Host field (or the authority of an absolute-form target); "" when neither."""
        self.scheme = scheme
        self.sockname = sockname
        """The listener's own address, as the socket reports it."""
        self._query: MultiDictProxy[str] | None = None

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            pairs = urllib.parse.parse_qsl(self.query_string, keep_blank_values=True)
            self._query = MultiDictProxy(MultiDict(pairs))
        return self._query

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased, as aiohttp reports it."""
        value = self.headers.get("Content-Type")
        if not value:
            return "application/octet-stream"
        return value.partition(";")[0].strip().lower()

    @property
    def url(self) -> URL:
        return URL.build(scheme=self.scheme, authority=self.host, path=self.path)

    @property
    def body_exists(self) -> bool:
        return bool(self.body)

    async def read(self) -> bytes:
        return self.body


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, answers them one at a time, in order."""

    def __init__(self, server: LeanServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._sockname: tuple[str, int] | None = None
        # (request, keep the connection open after it, refused with (status, why), HTTP/1.0)
        self._queue: collections.deque[tuple[Request, bool, tuple[int, str] | None, bool]] = (
            collections.deque()
        )
        self._task: asyncio.Task[None] | None = None
        self._paused = False  # reading, while too many requests wait
        # Cleared while the transport's write buffer is full (the client is not reading):
        # answering stops, requests queue up to _MAX_PIPELINED, then reading pauses too.
        self._writable = asyncio.Event()
        self._writable.set()
        self._closing = False
        self._chunk_begun = False  # a chunk's size line was read in the piece being parsed
        self._tail = b""  # in a chunked body, the start of a line a piece left unended
        self._new_message()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        sockname = transport.get_extra_info("sockname")
        self._sockname = (str(sockname[0]), int(sockname[1])) if sockname else None
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._chunk_begun = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._closing_after_queue()  # CONNECT or Upgrade: answer what came, then close
        except httptools.HttpParserError as error:
            self._refuse(400, f"malformed HTTP request: {error}")
        else:
            if self._chunk_begun and self._chunk_open and not self._closing:
                self._check_chunk(data)
        if self._chunked:  # a chunk-size line may straddle into the next piece
            self._tail = keep_tail(self._tail, data)

    def _check_chunk(self, data: bytes) -> None:
        """llhttp takes any chunk size up to 2**64 and waits for its bytes: a client that
        declared more than the body limit is refused now (:mod:`._framing`)."""
        size = open_chunk_size(self._tail, data, self._chunk_bytes)
        limit = self._server.client_max_size
        if size is not None and self._body_bytes - self._chunk_bytes + size > limit:
            self._refuse(413, f"a chunk of {size} bytes makes the body over {limit} bytes")

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._queue.clear()
        self._writable.set()  # let a waiting answer loop see the connection is gone
        self._server.connections.discard(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _refuse(self, status: int, why: str) -> None:
        """Answer ``status`` after what is queued, then close (the stream cannot be trusted)."""
        self._queue.append((self._blank_request(), False, (status, why), False))
        self._closing_after_queue()
        self._start()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._new_message()

    def _new_message(self) -> None:
        """Start reading a request: nothing of the previous one is kept."""
        self.idle_since = time.monotonic()
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        # The fields the server itself reads, noted as they arrive.
        self._host = ""
        self._hosts = 0
        self._length = ""
        self._chunked = False
        self._expect = False
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._refused: tuple[int, str] | None = None
        self._chunk_open = False  # a chunk's size line was read, its bytes are still coming
        self._chunk_bytes = 0  # of those, delivered so far

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_FIELD_BYTES - 32:  # with the method and version: one line
            self._refused = (414, f"the request target is over {_MAX_FIELD_BYTES - 32} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > _MAX_HEADER_BYTES:
            self._refused = (431, f"the header section is over {_MAX_HEADER_BYTES} bytes")
            return
        if len(name) + len(value) > _MAX_FIELD_BYTES:
            field = name.decode("ascii", "replace")[:40]
            self._refused = (431, f"header field {field} is over {_MAX_FIELD_BYTES} bytes")
            return
        text = value.decode("utf-8", "surrogateescape")
        self._headers.append((name.decode("utf-8", "surrogateescape"), text))
        lowered = name.lower()
        if lowered == b"host":
            self._hosts += 1
            if self._hosts > 1:  # RFC 9112 §3.2: which authority would be meant?
                self._refused = (400, "the request has more than one Host header")
            self._host = text
        elif lowered == b"content-length":
            self._length = text
        elif lowered == b"transfer-encoding":
            self._chunked = True
        elif lowered == b"expect":
            self._expect = text.lower() == "100-continue"

    def on_headers_complete(self) -> None:
        limit = self._server.client_max_size
        if self._refused is None and self._length.isdigit() and int(self._length) > limit:
            self._refused = (413, f"the request body is over {limit} bytes")
        if self._refused is None and self._chunked and self._parser.get_http_version() == "1.0":
            # RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding; its framing is faulty, and a
            # front end that read it another way would see a second, smuggled request.
            self._refused = (400, "an HTTP/1.0 request cannot carry Transfer-Encoding")
        if self._refused is not None:  # answer now: the client may wait before sending a body
            self._refuse(*self._refused)
            return
        # Only when nothing is being answered (an interim answer is read as the next answer's)
        # and never to HTTP/1.0 (RFC 9110 §10.1.1).
        if (
            self._expect
            and self._transport is not None
            and self._task is None
            and not self._queue
            and self._parser.get_http_version() != "1.0"
        ):
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_chunk_header(self) -> None:
        self._chunk_open, self._chunk_bytes, self._chunk_begun = True, 0, True

    def on_chunk_complete(self) -> None:
        self._chunk_open = False

    def on_body(self, body: bytes) -> None:
        if self._closing:
            return
        self._chunk_bytes += len(body)
        self._body_bytes += len(body)
        limit = self._server.client_max_size
        if self._body_bytes > limit:  # chunked, so no Content-Length said so in advance
            self._refuse(413, f"the request body is over {limit} bytes")
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return
        keep_alive = self._parser.should_keep_alive()
        http10 = self._parser.get_http_version() == "1.0"
        if self._parser.should_upgrade() and (self._chunked or self._length not in ("", "0")):
            # llhttp ends an upgrade request at its headers and hands the body on as the new
            # protocol's bytes: answering would act on a request without its body.
            self._refuse(400, "a request with a body cannot ask to Upgrade the connection")
            return
        request = self._request(http10)
        if not request.host:  # RFC 9112 §3.2: a 1.1 request without Host is answered 400
            self._refuse(400, "an HTTP/1.1 request needs a Host header")
            return
        self._queue.append((request, keep_alive, None, http10))
        if len(self._queue) >= _MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._start()

    # Answering.

    def _request(self, http10: bool) -> Request:
        method = self._parser.get_method().decode("ascii", "replace")
        host = self._host
        if not host and http10 and self._sockname is not None:  # 1.0 may omit Host: this
            address, number = self._sockname  # listener is the authority it asked
            host = f"[{address}]:{number}" if ":" in address else f"{address}:{number}"
        raw_path, _, raw_query = self._url.partition(b"?")
        if not raw_path.startswith(b"/"):  # absolute-form (or authority-form): the target's
            try:  # authority stands in for Host (RFC 9112 §3.2.2)
                parsed = httptools.parse_url(self._url)
                raw_path, raw_query = parsed.path or b"/", parsed.query or b""
                if parsed.host:
                    port = f":{parsed.port}" if parsed.port else ""
                    name = parsed.host.decode("utf-8", "surrogateescape")
                    host = (f"[{name}]" if ":" in name else name) + port
            except httptools.HttpParserInvalidURLError:
                host, raw_path, raw_query = self._url.decode("latin-1"), b"/", b""
        written = raw_path.decode("utf-8", "surrogateescape")
        path = written
        if "%" in path:
            path = urllib.parse.unquote(path, errors="surrogateescape")
        return Request(
            method=method,
            path=path,
            raw_path=written,
            query_string=raw_query.decode("utf-8", "surrogateescape"),
            headers=CIMultiDictProxy(CIMultiDict(self._headers)),
            body=b"".join(self._body),
            host=host,
            scheme=self._server.scheme,
            sockname=self._sockname,
        )

    def _blank_request(self) -> Request:
        return Request(
            "GET",
            "/",
            "",
            CIMultiDictProxy(CIMultiDict()),
            b"",
            "",
            self._server.scheme,
            self._sockname,
        )

    def _closing_after_queue(self) -> None:
        self._closing = True
        if self._transport is not None and not self._queue and self._task is None:
            self._transport.close()

    def _start(self) -> None:
        if self._task is None and self._queue:
            self._task = asyncio.get_running_loop().create_task(self._answer_queue())

    async def _answer_queue(self) -> None:
        try:
            while self._queue:
                if not self._writable.is_set():
                    await self._writable.wait()
                    if self._closing and not self._queue:
                        return
                    if not self._queue:
                        break
                request, keep_alive, refused, http10 = self._queue.popleft()
                response = await self._answer(request, refused)
                transport = self._transport
                if transport is None or transport.is_closing():
                    return
                last = not keep_alive or refused is not None or (self._closing and not self._queue)
                try:
                    data = _encode(response, request, keep_alive=not last, http10=http10)
                except (TypeError, ValueError):
                    log.exception("the IdP side built an answer it cannot send")
                    failed = self._server.refusal(500, "the proxy built an answer it cannot send")
                    data = _encode(failed, request, keep_alive=not last, http10=http10)
                transport.write(data)
                self.idle_since = time.monotonic()
                if last:
                    self._closing = True
                    self._queue.clear()
                    transport.close()
                    return
                if self._paused and len(self._queue) < _MAX_PIPELINED:
                    self._paused = False
                    transport.resume_reading()
        finally:
            self._task = None

    async def _answer(
        self, request: Request, refused: tuple[int, str] | None
    ) -> web.Response | Reply:
        if refused is not None:
            return self._server.refusal(*refused)
        try:
            return await self._server.handler(request)
        except Exception:
            log.exception("the IdP side failed on %s %s", request.method, request.path)
            return self._server.refusal(500, "the proxy failed on this request; see its log")

    def close_if_idle(self, before: float) -> None:
        if self._task is None and not self._queue and self.idle_since < before:
            self.close()

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()
        if self._task is not None:
            self._task.cancel()


class LeanServer:
    """Serves ``handler`` on ``host:port`` (over TLS with ``ssl_context``); requests the server
    refuses itself are answered with what ``refusal`` builds (plain text when not given)."""

    def __init__(
        self, handler: Handler, *, client_max_size: int, refusal: Refusal | None = None
    ) -> None:
        self.handler = handler
        self.client_max_size = client_max_size
        self.refusal: Refusal = refusal or _plain
        self.scheme = "http"
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
        """Listen; returns the bound port."""
        self.scheme = "https" if ssl_context is not None else "http"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, ssl=ssl_context
        )
        self._sweeper = loop.create_task(self._sweep())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection (requests in flight are cancelled)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        self.connections.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _sweep(self) -> None:
        """Close connections idle for longer than the keep-alive time."""
        while True:
            await asyncio.sleep(_KEEPALIVE / 5)
            before = time.monotonic() - _KEEPALIVE
            for connection in list(self.connections):
                connection.close_if_idle(before)


def _plain(status: int, why: str) -> web.Response:
    return web.Response(status=status, text=f"{status} {HTTPStatus(status).phrase}: {why}")


_date: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date field value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def _encode(
    response: web.Response | Reply, request: Request, *, keep_alive: bool, http10: bool
) -> bytes:
    """The response as bytes, framed by Content-Length; HEAD gets the fields without a body."""
    status = response.status
    body = response.body
    if body is None:
        body = b""
    elif not isinstance(body, bytes):  # the IdP side only builds whole bodies
        raise TypeError(f"cannot send a {type(body).__name__} body")
    lines = [f"HTTP/1.1 {status} {response.reason}\r\n"]
    has_type = has_date = False
    fields = response.headers if isinstance(response, Reply) else response.headers.items()
    for name, value in fields:
        lowered = name.lower()
        if lowered in _OWN_FIELDS:
            continue
        has_type = has_type or lowered == "content-type"
        has_date = has_date or lowered == "date"
        # RFC 9110 §5.1, §5.5: a name is a token; a value has no CR, LF or NUL.
        if not _TOKEN.fullmatch(name) or _UNSENDABLE.search(value):
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}\r\n")
    empty = status in _EMPTY_BODY or status < 200
    if not empty:
        lines.append(f"Content-Length: {len(body)}\r\n")
        if body and not has_type:
            lines.append("Content-Type: application/octet-stream\r\n")
    if not has_date:
        lines.append(f"Date: {_http_date()}\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    elif http10:
        lines.append("Connection: keep-alive\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("utf-8", "surrogateescape")
    if empty or request.method == "HEAD":
        return head
    return head + body
