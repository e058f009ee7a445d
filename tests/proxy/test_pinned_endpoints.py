"""Endpoints pinned to the upstream (#20 point 3): a discovery document that puts an endpoint
on another origin than the configured upstream is refused at start-up, unless that origin is
allowed; client credentials and tokens are never sent there."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from jitchaos.errors import InvalidArgument
from jitchaos.proxy import ChaosProxy
from tests.common.cli import run_cli

Serve = Callable[[web.Application, str], "Any"]


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, host: str = "127.0.0.1") -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        runners.append(runner)
        return f"http://{host}:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _elsewhere(seen: list[dict[str, str]]) -> web.Application:
    """Another host: it records what reaches it (it must stay empty)."""

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"access_token": "x", "token_type": "Bearer"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    return app


def _provider(elsewhere: Callable[[], str]) -> web.Application:
    """An upstream whose discovery puts its token endpoint on ``elsewhere()``."""

    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": base,
                "token_endpoint": f"{elsewhere()}/token",
                "jwks_uri": f"{base}/jwks",
            }
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    return app


async def test_an_endpoint_on_another_origin_refuses_the_start(serve: Any) -> None:
    seen: list[dict[str, str]] = []
    other = await serve(_elsewhere(seen), "127.0.0.2")
    upstream = await serve(_provider(lambda: other))
    proxy = ChaosProxy(upstream)
    with pytest.raises(InvalidArgument) as refused:
        await proxy.start("127.0.0.1", 0)
    said = str(refused.value)
    assert f"token_endpoint is on {other}" in said
    assert "--allow-origin" in said
    assert not proxy._runners  # nothing half-started left listening
    assert seen == []


async def test_an_allowed_origin_is_used(serve: Any) -> None:
    seen: list[dict[str, str]] = []
    other = await serve(_elsewhere(seen), "127.0.0.2")
    upstream = await serve(_provider(lambda: other))
    proxy = ChaosProxy(upstream, allow_origins=[other])
    await proxy.start("127.0.0.1", 0)
    try:
        basic = base64.b64encode(b"ci:ci-secret").decode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{proxy.url}/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            ) as answer,
        ):
            await answer.read()
        assert len(seen) == 1
    finally:
        await proxy.stop()


async def test_discovery_that_moves_later_is_refused_at_use(serve: Any) -> None:
    # The upstream answers discovery only after the proxy started (it was restarting): the
    # same rule holds at first use, as a 502, and nothing reaches the other host.
    seen: list[dict[str, str]] = []
    other = await serve(_elsewhere(seen), "127.0.0.2")
    where = {"other": "http://127.0.0.1:9"}
    upstream = await serve(_provider(lambda: where["other"]))
    proxy = ChaosProxy(upstream)
    # At start the endpoint is on a port of the upstream's own host... but not its origin.
    with pytest.raises(InvalidArgument):
        await proxy.start("127.0.0.1", 0)
    where["other"] = upstream
    proxy = ChaosProxy(upstream)
    await proxy.start("127.0.0.1", 0)
    try:
        where["other"] = other
        proxy.idp_side._require_upstream().metadata = None  # discovery read again
        basic = base64.b64encode(b"ci:ci-secret").decode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{proxy.url}/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            ) as answer,
        ):
            body = await answer.json()
            assert answer.status == 502
        assert "token_endpoint is on" in body["error_description"]
        assert seen == []
    finally:
        await proxy.stop()


def test_allowed_origins_are_origins() -> None:
    for bad in ("ftp://x", "http://h/path", "nohost", 7):
        with pytest.raises(InvalidArgument, match="must be scheme://host"):
            ChaosProxy("http://127.0.0.1:9", allow_origins=[bad])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match="must be a list"):
        ChaosProxy("http://127.0.0.1:9", allow_origins="http://a")


def test_the_cli_refuses_in_one_line() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Discovery(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"issuer": "http://127.0.0.1", "token_endpoint": "http://127.0.0.2:1/token"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = run_cli("proxy", "--upstream", url)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "token_endpoint is on http://127.0.0.2:1" in lines[0]
    finally:
        server.shutdown()
        server.server_close()
