"""The proxy's service side: one listener per service, in front of it.

Test traffic goes to the service unchanged (path and query as written, body streamed); each
answer becomes a decision in the history (method, path, token fingerprint, status, time,
holder), and the first use of a token is an event the schedule can wait for.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from jitchaos._history import History
from jitchaos._ledger import Ledger
from jitchaos._tokens import fingerprint
from jitchaos._wire import (
    UNREADABLE_BODY,
    FormError,
    bearer_token,
    form_pairs,
    problem,
    quiet_client_mistakes,
    resolve_dot_segments,
    unreadable_body,
)
from jitchaos.proxy._engine import FaultEngine
from jitchaos.proxy._framing import GuardedServer
from jitchaos.proxy._http import Handler, end_to_end, foreign_target, request_headers
from jitchaos.proxy._metrics import Metrics

__all__ = ["ServiceSide"]

log = logging.getLogger("jitchaos.proxy")

_service_log = quiet_client_mistakes("jitchaos.proxy.service")


# A service path may keep these as they came; anything else (non-ASCII) is percent-encoded.
_PATH_SAFE = "/%;:@!$&'()*+,=-._~"
_BUFFER_LIMIT = 1024 * 1024  # service answers up to this size are read whole, larger streamed


_ABSURD_CHUNK = 1 << 40
"""A chunk larger than this (1 TiB) is refused at once: the service side streams bodies of
any size, but no client sends a terabyte in one chunk; llhttp would wait for it."""


class ServiceSide:
    """Forwards test traffic to the services (``services`` is the proxy's own mapping, which
    ``retarget`` changes) and records each answer as a decision; ``holder`` says who drives
    the traffic now."""

    def __init__(
        self,
        services: dict[str, URL],
        *,
        ledger: Ledger,
        engine: FaultEngine,
        history: History,
        metrics: Metrics,
        holder: Callable[[], str | None],
        upstream_timeout: float,
    ) -> None:
        self.services = services
        self.ledger = ledger
        self.clock = ledger.clock
        self.engine = engine
        self.history = history
        self.metrics = metrics
        self._holder = holder
        self._upstream_timeout = upstream_timeout
        self._session: aiohttp.ClientSession | None = None

    def open(self, ca_context: ssl.SSLContext | None) -> None:
        """Open the connection pool to the services."""
        self._session = aiohttp.ClientSession(
            # No total: a long download is no failure; silence for the timeout is.
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self._upstream_timeout, sock_read=self._upstream_timeout
            ),
            auto_decompress=False,
            connector=aiohttp.TCPConnector(ssl=ca_context or True, limit=0),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def server(self, name: str) -> web.ServerRunner:
        """A runner for service ``name``'s listener: aiohttp's low-level server, one handler and
        no router or middleware chain (about 10 us a request less on the hot path)."""
        return web.ServerRunner(
            GuardedServer(
                self._handler(name),
                chunk_limit=_ABSURD_CHUNK,
                access_log=None,
                logger=_service_log,
            ),
            handle_signals=False,
        )

    def _handler(self, name: str) -> Handler:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            refused = foreign_target(request)
            if refused is not None:
                return refused
            return await self._service_request(request, name, self.services[name])

        return handle

    async def _service_request(
        self, request: web.BaseRequest, name: str, target: URL
    ) -> web.StreamResponse:
        assert self._session is not None
        started = time.perf_counter()
        self.engine.tick()
        if request.version < (1, 1) and "Transfer-Encoding" in request.headers:
            # RFC 9112 §6.1: faulty framing in HTTP/1.0; the service might read the body
            # another way and see a second, smuggled request.
            return problem(400, "an HTTP/1.0 request cannot carry Transfer-Encoding")
        resolved = _service_url(target, request)
        if resolved is None:
            return problem(
                400,
                "an encoded slash next to a dot segment (..%2F) could climb out of service "
                f"{name}'s base path; write the path plainly",
            )
        path, url = resolved
        if (
            request.headers.get("Expect", "").lower() == "100-continue"
            and request.version >= (1, 1)
            and request.body_exists
        ):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as aiohttp's router
        raw = bearer_token(request.headers.get("Authorization", "")) or request.query.get(
            "access_token"
        )
        token = fingerprint(raw) if raw else None
        response: web.StreamResponse | None = None
        upload = _Upload()
        try:
            # Until the service answers, silence is bounded by a watchdog that each piece of
            # an upload pushes back (a slow upload is no timeout; a service that stops reading
            # it is); then by the session's sock_read, which a long download keeps resetting.
            async with asyncio.timeout(self._upstream_timeout) as watchdog:
                headers = request_headers(request)
                data: bytes | AsyncIterator[bytes] | None = None
                if token is None and _may_carry_form_token(request):
                    data = await upload.whole(request)  # small: read for its token, sent on
                    raw = _form_token(data)
                    token = fingerprint(raw) if raw else None
                elif request.body_exists:
                    if "Content-Encoding" in headers:
                        headers.popall("Content-Encoding")  # aiohttp has decoded the body
                    elif request.content_length is not None:
                        headers["Content-Length"] = str(request.content_length)  # not chunked
                    data = upload.pieces(request.content, watchdog, self._upstream_timeout)
                if token is not None:
                    self.engine.offer_token(token)
                async with self._session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                ) as upstream:
                    watchdog.reschedule(None)
                    fields = end_to_end(upstream.headers)
                    length = upstream.content_length
                    if request.method == "HEAD" or upstream.status in (204, 304):
                        response = web.StreamResponse(status=upstream.status, headers=fields)
                        if length is not None and request.method == "HEAD":
                            response.content_length = length  # what a GET would carry
                    elif length is not None and length <= _BUFFER_LIMIT:
                        response = web.Response(
                            status=upstream.status, body=await upstream.read(), headers=fields
                        )
                    else:
                        response = web.StreamResponse(status=upstream.status, headers=fields)
                        if length is not None:
                            response.content_length = length
                        await response.prepare(request)
                        async for chunk in upstream.content.iter_chunked(64 * 1024):
                            await response.write(chunk)
                        await response.write_eof()
        except (aiohttp.ClientError, TimeoutError, ConnectionError, *UNREADABLE_BODY) as error:
            stalled = isinstance(error, TimeoutError) and upload.waiting
            if (response is None or not response.prepared) and (upload.broken or stalled):
                # The client's body could not be read, or stopped coming while the service
                # waited for it: the service was never asked a whole request, so it made no
                # decision to record or blame.
                why = upload.broken or (
                    f"the request body stopped arriving ({upload.received} bytes in, then "
                    f"nothing for {self._upstream_timeout:g}s)"
                )
                refused = problem(400 if upload.broken else 408, why)
                refused.force_close()  # where the body ends is unknown: nothing can follow
                return refused
            if response is not None and response.prepared:
                # Its status line and part of its body are out: a second answer would land
                # inside the first. The client sees the connection end short of the body.
                log.warning(
                    "service %s: the answer to %s %s was cut short (%s)",
                    name,
                    request.method,
                    path,
                    type(error).__name__,
                )
                if request.transport is not None:
                    request.transport.close()
            else:
                status = 504 if isinstance(error, TimeoutError) else 502
                why = "no answer in time" if status == 504 else _unreachable(error)
                response = problem(status, f"service {name} at {target.origin()}: {why}")
                response.headers["X-Jitchaos-Upstream"] = str(target.origin())
        decision = self.history.decision(
            at=self.clock.now(),
            step=self.engine.step,
            service=name,
            method=request.method,
            path=path,
            fingerprint=token,
            status=response.status,
            ledger_seq=self.ledger.seq,
            holder=self._holder(),
            latency=time.perf_counter() - started,
        )
        record = getattr(self.ledger.audit, "write_decision", None)
        if record is not None:
            try:
                record(decision)
            except OSError as error:  # the service already answered; say so, keep serving
                log.error("could not write a decision to the audit log: %s", error)
        self.metrics.decision(name, response.status)
        if token is not None and 200 <= response.status < 300 and self.engine.event("first-use"):
            self.engine.offer_token(token)  # what fired on first use acts on this token
        return response


def _service_url(target: URL, request: web.BaseRequest) -> tuple[str, URL] | None:
    """The service's URL for a request, as the client wrote its path and query (percent
    escapes kept: ``%2F`` stays ``%2F``, ``%26`` in a value stays one), and the path as the
    history records it. Dot segments (also ``%2e%2e``) are resolved first, so ``/../admin``
    cannot climb out of ``--service http://host/api``. None for a segment that a server
    decoding before it resolves would read as one next to a slash (``..%2F``, ``%5C..``)."""
    segments = request.rel_url.raw_path.split("/")[1:]
    for segment in segments:
        decoded = urllib.parse.unquote(segment)
        if decoded not in (".", "..") and any(
            part in (".", "..") for part in re.split(r"[/\\]", decoded)
        ):
            return None
    kept = resolve_dot_segments(segments, meaning=urllib.parse.unquote)
    raw_path = urllib.parse.quote("/" + "/".join(kept), safe=_PATH_SAFE)
    query = request.rel_url.raw_query_string
    url = URL(
        f"{target.scheme}://{target.raw_authority}{target.raw_path.rstrip('/')}{raw_path}"
        + (f"?{query}" if query else ""),
        encoded=True,
    )
    return URL.build(path=raw_path, encoded=True).path, url


def _form_token(body: bytes) -> str | None:
    """RFC 6750 §2.2: the form's ``access_token`` (the first, as most servers read it)."""
    try:
        pairs = form_pairs(body, max_fields=_BUFFER_LIMIT)
        return next((value for name, value in pairs if name == "access_token"), None)
    except FormError:
        return None


class _Upload:
    """The client's request body on its way to the service, and how its reading went: a body
    the client garbled (an undecodable Content-Encoding) or stopped sending is the client's
    fault, answered as such, never the service's."""

    def __init__(self) -> None:
        self.waiting = False
        """Waiting for the client's next piece (not for the service to take the last)."""
        self.received = 0
        self.broken: str | None = None

    async def whole(self, request: web.BaseRequest) -> bytes:
        self.waiting = True
        try:
            body = await request.read()
        except (*UNREADABLE_BODY, ConnectionError, aiohttp.ClientError) as error:
            self._failed(error)
            raise
        self.received, self.waiting = len(body), False
        return body

    async def pieces(
        self, content: aiohttp.StreamReader, watchdog: asyncio.Timeout, seconds: float
    ) -> AsyncIterator[bytes]:
        """The body as it comes, each piece the service takes pushing the watchdog back."""
        loop = asyncio.get_running_loop()
        self.waiting = True
        try:
            async for chunk in content.iter_any():
                self.waiting = False
                watchdog.reschedule(loop.time() + seconds)
                self.received += len(chunk)
                yield chunk
                self.waiting = True
        except (*UNREADABLE_BODY, ConnectionError, aiohttp.ClientError) as error:
            self._failed(error)
            raise
        self.waiting = False

    def _failed(self, error: BaseException) -> None:
        """Reading the client's body failed: say why, as the client's fault."""
        if isinstance(error, UNREADABLE_BODY):
            self.broken = unreadable_body(error)
        else:
            self.broken = f"the client went away while sending the request body ({error})"


def _may_carry_form_token(request: web.BaseRequest) -> bool:
    """A form body that may carry the access token (RFC 6750 §2.2: not with GET), small enough
    to read whole before forwarding it."""
    length = request.content_length
    return (
        request.method not in ("GET", "HEAD")
        and "Content-Encoding" not in request.headers
        and request.content_type == "application/x-www-form-urlencoded"
        and length is not None
        and 0 < length <= _BUFFER_LIMIT
    )


def _unreachable(error: BaseException) -> str:
    """Why a service could not be reached, without the URL (its query may hold a token)."""
    if isinstance(error, aiohttp.ClientResponseError):
        return f"unreachable (it answered something that is not HTTP: {error.message})"
    return f"unreachable ({error})"
