"""The machines' synchronous HTTP client: keep-alive connections, and a retry on a new one
when the server has closed an idle connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from jitchaos._oauth_client import Connections, exchange


class Server:
    """A loopback HTTP/1.1 server that counts connections; with ``close_after_each`` it closes
    every connection after answering once (as a server does with an idle keep-alive one)."""

    def __init__(self, *, close_after_each: bool) -> None:
        self.close_after_each = close_after_each
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buffer = b""
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    path = head.split(b" ")[1]
                    body = b"seen " + path
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Seq: %d\r\n\r\n%s"
                        % (len(body), self.connections, body)
                    )
                    if self.close_after_each:
                        break

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def keeps_open() -> Iterator[Server]:
    server = Server(close_after_each=False)
    yield server
    server.close()


@pytest.fixture
def closes() -> Iterator[Server]:
    server = Server(close_after_each=True)
    yield server
    server.close()


def test_requests_share_one_connection(keeps_open: Server) -> None:
    pool = Connections()
    try:
        for path in ("/a", "/b?x=1", "/c"):
            status, headers, body = exchange(
                "GET", f"http://127.0.0.1:{keeps_open.port}{path}", connections=pool
            )
            assert (status, body) == (200, b"seen " + path.encode())
            assert headers["X-Seq"] == "1"
    finally:
        pool.close()
    assert keeps_open.connections == 1


def test_a_connection_the_server_closed_is_replaced_once(closes: Server) -> None:
    pool = Connections()
    try:
        for n in (1, 2, 3):
            status, headers, _ = exchange(
                "POST", f"http://127.0.0.1:{closes.port}/token", body=b"x", connections=pool
            )
            assert status == 200
            assert headers["X-Seq"] == str(n)
    finally:
        pool.close()
    assert closes.connections == 3


def test_a_server_that_is_gone_raises_oserror_and_leaves_nothing_open() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    pool = Connections()
    with pytest.raises(ConnectionRefusedError):
        exchange("GET", f"http://127.0.0.1:{port}/", connections=pool, timeout=2)
    assert pool._open == {}
    with pytest.raises(ValueError, match="not an http"):
        exchange("GET", "ftp://127.0.0.1/x", connections=pool)
