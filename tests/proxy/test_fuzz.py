"""Each of the proxy's three listeners under raw, mangled requests (issue #20 point 2): whatever
the method, target, header fields, body framing and Content-Encoding (garbage labelled gzip,
absurd chunk sizes, fields over the upstream's limits), the answer is a 4xx or better, never a
5xx: no crash, and on the service side no healthy service blamed for the client's request.
Each listener keeps serving well-formed requests after. A longer run: bench/soak.py."""

from __future__ import annotations

import gzip
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitchaos import ManualClock
from jitchaos.proxy import ChaosProxy
from tests.common.idp import standard_config
from tests.common.service import healthy_app, served

_TOKEN_CHARS = "!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"
_PATHS = [
    "/",
    "/token",
    "/introspect",
    "/revoke",
    "/jwks",
    "/read",
    "/write",
    "/faults",
    "/schedule",
    "/clock",
    "/history",
    "/status",
    "/register",
    "/userinfo",
]
_NOISE = ["", "?x=1", "?access_token=abc", "/..", "/%2e%2e", "%00", "//", "?%FF", "#frag"]
_FORM = b"grant_type=client_credentials&scope=read"


def _encoded(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)
    return body  # identity, and every coding the body is not really in


@st.composite
def raw_requests(draw: st.DrawFn, secret: str | None = None) -> bytes:
    """One request as bytes on the wire, ``Connection: close`` so the answer ends the
    connection; ``{host}`` stands for the listener's authority."""
    method = draw(
        st.just("POST")  # what every endpoint that reads a body takes: drawn half the time
        | st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
        | st.text(_TOKEN_CHARS, min_size=1, max_size=8)
    )
    target = draw(st.sampled_from(_PATHS)) + draw(st.sampled_from(_NOISE))
    if draw(st.booleans()):
        target += "/" + "a" * draw(st.integers(0, 9000))  # over 8 KiB: past aiohttp's line
    fields: list[tuple[str, str]] = [("Host", "{host}"), ("Connection", "close")]
    if draw(st.booleans()):
        fields.append(("Content-Type", "application/x-www-form-urlencoded"))
    if secret is not None and draw(st.integers(0, 4)):
        fields.append(("Authorization", f"Bearer {secret}"))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(
            st.sampled_from(["Content-Type", "Accept", "Authorization", "X-Junk", "Expect"])
            | st.text(_TOKEN_CHARS, min_size=1, max_size=12)
        )
        value = draw(
            st.sampled_from(
                ["application/x-www-form-urlencoded", "application/json", "Basic eDp5", "*/*"]
            )
            | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
            | st.builds(lambda n: "v" * n, st.integers(8000, 9000))
        )
        fields.append((name, value))
    body = draw(st.sampled_from([b"", _FORM, b'{"kind": "revoke"}']) | st.binary(max_size=200))
    coding = draw(st.sampled_from(["", "gzip", "deflate", "br", "x-junk"]))
    if coding:
        fields.append(("Content-Encoding", coding))
        if draw(st.booleans()):
            body = _encoded(body, coding)  # else: garbage labelled with a coding
    head = f"{method} {target} HTTP/1.1\r\n"
    if draw(st.booleans()) and body:
        fields.append(("Transfer-Encoding", "chunked"))
        # Its own length, or more than any listener takes in one chunk (a smaller lie is a
        # client that stalls, which a server rightly waits on for a while).
        size = draw(st.sampled_from(["", "FFFFFFFFFFFFFFFF", "10000000001"]))
        framed = (size or f"{len(body):x}").encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    else:
        fields.append(("Content-Length", str(len(body))))
        framed = body
    head += "".join(f"{name}: {value}\r\n" for name, value in fields)
    return head.encode() + b"\r\n" + framed


def status_of(port: int, raw: bytes) -> int:
    """Send ``raw`` on a fresh connection and read the answer to the end (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw.replace(b"{host}", b"127.0.0.1:%d" % port))
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # refused and closed before it read all we sent: the answer is in
    assert answer, "the connection closed without an answer"
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), line
    return int(line.split()[1])


@pytest.fixture(scope="module")
def listeners() -> Iterator[dict[str, Any]]:
    with listening() as running:
        yield running


@contextmanager
def listening() -> Iterator[dict[str, Any]]:
    """A chaos proxy (embedded IdP) in front of a healthy service: each listener's port, the
    control secret and the proxy."""

    with served(healthy_app()) as service_url:
        proxy = ChaosProxy(standard_config(), services={"api": service_url}, clock=ManualClock())
        with proxy.in_thread():
            yield {
                "IdP side": _port(proxy.url),
                "service side": _port(proxy.service_url("api")),
                "control API": _port(proxy.control_url),
                "secret": proxy.secret,
                "proxy": proxy,
            }


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


WELL_FORMED = {
    "IdP side": b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: {host}\r\n"
    b"Connection: close\r\n\r\n",
    "service side": b"GET /read HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
    "control API": b"GET /status HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {secret}\r\n"
    b"Connection: close\r\n\r\n",
}


@pytest.mark.parametrize("listener", list(WELL_FORMED))
def test_no_mangled_request_gets_a_5xx(listeners: dict[str, Any], listener: str) -> None:
    port, secret = listeners[listener], listeners["secret"]
    history = listeners["proxy"].history

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(raw=raw_requests(secret if listener == "control API" else None))
    def check(raw: bytes) -> None:
        before = len(history.decisions)
        status = status_of(port, raw)
        assert status < 500, raw[:300]
        if listener == "service side" and status in (400, 408, 413, 414, 431):
            # The proxy refused the client's request itself: no decision of the service.
            new = history.decisions[before:]
            assert all(d.status < 500 for d in new)

    check()
    well_formed = WELL_FORMED[listener].replace(b"{secret}", secret.encode())
    assert status_of(port, well_formed) == 200


GARBLED = (
    "POST {path} HTTP/1.1\r\nHost: {{host}}\r\nConnection: close\r\n{auth}"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\n"
    "Content-Length: 12\r\n\r\nnot gzip at all"[:-3]
)


@pytest.mark.parametrize(
    ("listener", "path", "words"),
    [
        ("IdP side", "/token", b'"error": "invalid_request"'),
        ("service side", "/write", b'"status": 400'),
        ("control API", "/faults", b'"status": 400'),
    ],
)
def test_a_body_labelled_gzip_that_is_not_is_the_clients_fault(
    listeners: dict[str, Any], listener: str, path: str, words: bytes
) -> None:
    """Found by the 90,000-request fuzz of issue #20: a 500 from the IdP, a 500 from the
    control API, and a 502 on the service side that blamed a healthy service and was recorded
    as its decision."""
    history = listeners["proxy"].history
    before = len(history.decisions)
    auth = f"Authorization: Bearer {listeners['secret']}\r\n" if listener == "control API" else ""
    raw = GARBLED.format(path=path, auth=auth).encode()
    port = listeners[listener]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw.replace(b"{host}", b"127.0.0.1:%d" % port))
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert words in answer
    assert b"the request body cannot be read: Can not decode content-encoding: gzip" in answer
    assert len(history.decisions) == before  # the service decided nothing


def test_a_header_field_the_upstream_would_refuse_is_refused_first_in_oauth_json(
    listeners: dict[str, Any],
) -> None:
    """The embedded IdP (aiohttp) refuses a field over 8,190 bytes with plain text and closes;
    the proxy took up to 64 KiB and relayed that as a 502. It now undercuts the limit and
    answers in OAuth's JSON."""
    port = listeners["IdP side"]
    raw = b"GET /jwks HTTP/1.1\r\nHost: {host}\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw.replace(b"{host}", b"127.0.0.1:%d" % port))
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"error": "invalid_request"' in answer
    assert b"header field X-Big is over 8190 bytes" in answer


def test_a_chunk_size_line_split_anywhere_is_read() -> None:
    from jitchaos.proxy._framing import ChunkGuard

    raw = (
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"FFFFFFFFFFFFFFFF;ext=1\r\nabc\r\n0\r\n\r\n"
    )
    sane = raw.replace(b"FFFFFFFFFFFFFFFF;ext=1", b"3;ext=1")
    for cut in range(1, len(raw)):
        guard = ChunkGuard(1 << 40)
        said = [guard.feed(raw[:cut]), guard.feed(raw[cut:])]
        assert [s for s in said if s] == [
            "a chunk of 18446744073709551615 bytes is over the 1099511627776 this proxy takes"
        ], cut
    for cut in range(1, len(sane)):
        guard = ChunkGuard(1 << 40)
        assert guard.feed(sane[:cut]) is None
        assert guard.feed(sane[cut:]) is None
    one_by_one = ChunkGuard(1 << 40)
    assert any(one_by_one.feed(raw[i : i + 1]) for i in range(len(raw)))


def test_a_long_chunk_extension_split_anywhere_is_read_from_the_lines_start() -> None:
    """AWS-style chunk signatures make size lines far longer than a size: split across
    reads, the size is still read from the line's start, not from what came last."""
    from jitchaos.proxy._framing import ChunkGuard

    head = b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    signed = head + b"3;chunk-signature=" + b"ab" * 40 + b"\r\nabc\r\n0\r\n\r\n"
    absurd = head + b"FFFFFFFFFFFFFFFF;n=" + b"z" * 300 + b"\r\nabc\r\n0\r\n\r\n"
    for cut in range(1, len(signed)):
        guard = ChunkGuard(1 << 40)
        assert guard.feed(signed[:cut]) is None, cut
        assert guard.feed(signed[cut:]) is None, cut
    for cut in range(1, len(absurd)):
        guard = ChunkGuard(1 << 40)
        assert any([guard.feed(absurd[:cut]), guard.feed(absurd[cut:])]), cut


def test_after_an_absurd_chunk_the_connection_closes(listeners: dict[str, Any]) -> None:
    """Kept alive, the connection would sit with a stream nobody can read on: it closes once
    the refusal is out, on every listener."""
    for listener in WELL_FORMED:
        port = listeners[listener]
        auth = f"Authorization: Bearer {listeners['secret']}\r\n".encode()
        raw = (
            b"POST /faults HTTP/1.1\r\nHost: {host}\r\n" + auth + b"Transfer-Encoding: chunked\r\n"
            b"\r\nFFFFFFFFFFFFFFFF\r\nabc\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw.replace(b"{host}", b"127.0.0.1:%d" % port))
            answer = b"".join(iter(lambda: sock.recv(65536), b""))  # ends: it was closed
        status = int(answer.split(b"\r\n", 1)[0].split()[1])
        assert status in (400, 413), (listener, answer[:200])
