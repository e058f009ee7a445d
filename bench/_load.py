"""The load generator, in its own process: CONCURRENCY keep-alive connections posting
client_credentials token requests for DURATION seconds. Prints one JSON line: requests, errors,
rps, p50/p99/max in ms.

It is kept light (one prepared request, asyncio protocols, the httptools parser, uvloop) so
that on a 2-core machine it leaves the CPU to what is measured: with aiohttp's client it spent
more per request than the proxies it drove, and a proxy's savings hardly showed in requests/s.

Usage: python -m bench._load URL DURATION CONCURRENCY
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from urllib.parse import urlsplit

import httptools

BODY = b"grant_type=client_credentials&scope=read+write"
CREDENTIALS = base64.b64encode(b"svc:svc-secret").decode()


class _Client(asyncio.Protocol):
    """One keep-alive connection sending the same request again as each answer completes."""

    def __init__(self, request: bytes, stats: _Stats) -> None:
        self.request = request
        self.stats = stats
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sent = 0.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.stats.until:
            self.transport.close()
            return
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.stats.errors += 1
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        self.stats.record(self.parser.get_status_code() == 200, time.perf_counter() - self.sent)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Stats:
    def __init__(self) -> None:
        self.until = 0.0
        self.latencies: list[float] = []
        self.errors = 0

    def record(self, ok: bool, latency: float) -> None:
        if ok:
            self.latencies.append(latency)
        else:
            self.errors += 1


async def _clients(host: str, port: int, request: bytes, stats: _Stats, count: int) -> None:
    loop = asyncio.get_running_loop()

    async def one() -> None:
        while time.perf_counter() < stats.until:
            try:
                _, client = await loop.create_connection(
                    lambda: _Client(request, stats), host, port
                )
            except OSError:
                stats.errors += 1
                await asyncio.sleep(0.01)
                continue
            try:  # a proxy that stops answering must not hang the benchmark
                await asyncio.wait_for(
                    client.closed, max(1.0, stats.until - time.perf_counter()) + 10
                )
            except TimeoutError:
                stats.errors += 1
                if client.transport is not None:
                    client.transport.abort()
                continue
            if time.perf_counter() < stats.until:
                stats.errors += 1  # the server closed a keep-alive connection mid-run

    await asyncio.gather(*(one() for _ in range(count)))


async def run(url: str, duration: float, concurrency: int) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Authorization: Basic {CREDENTIALS}\r\n"
        f"Content-Length: {len(BODY)}\r\n"
        "\r\n"
    ).encode() + BODY
    stats = _Stats()
    stats.until = time.perf_counter() + 0.3  # warm up: connections, caches
    await _clients(host, port, request, stats, concurrency)
    stats.latencies.clear()
    stats.errors = 0
    began = time.perf_counter()
    stats.until = began + duration
    await _clients(host, port, request, stats, concurrency)
    elapsed = time.perf_counter() - began
    latencies = sorted(stats.latencies)

    def pct(p: float) -> float:
        if not latencies:
            return 0
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "requests": len(latencies),
        "errors": stats.errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": 1000 * latencies[-1] if latencies else 0,
    }


def main() -> None:
    url, duration, concurrency = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    try:
        import uvloop

        result = uvloop.run(run(url, duration, concurrency))
    except ImportError:
        result = asyncio.run(run(url, duration, concurrency))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
