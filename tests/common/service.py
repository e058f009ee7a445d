"""A small resource server under test: validates tokens it gets through the chaos proxy.

``GET /read`` needs scope ``read``, ``POST /write`` needs ``write``. In ``jwt`` mode it
verifies signatures with PyJWT's ``PyJWKClient`` against the JWKS it is pointed at (a
well-behaved service: refetch on unknown kid, no cooldown); in ``introspect`` mode it asks RFC
7662 introspection on every request (no cache), as client ``api``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import aiohttp
import jwt
from aiohttp import web

from jitchaos._loop import BackgroundLoop

NEEDS = {"/read": "read", "/write": "write"}


class IdPUnavailable(Exception):
    """The IdP could not answer: the service says 503, not 401."""


class ResourceService:
    def __init__(
        self, mode: Literal["jwt", "introspect"], *, leeway: float = 0, jwks_cooldown: float = 0
    ) -> None:
        self.mode = mode
        self.leeway = leeway
        self.jwks_cooldown = jwks_cooldown
        self.issuer: str | None = None
        self.jwks: jwt.PyJWKClient | None = None
        self.introspection_url: str | None = None
        self.url = ""

    def point_at(self, idp_url: str, *, issuer: str) -> None:
        """Use the IdP (or proxy) at ``idp_url``; tokens must come from ``issuer``."""
        self.issuer = issuer
        self.jwks = jwt.PyJWKClient(
            f"{idp_url}/jwks", cache_keys=False, cooldown_duration=self.jwks_cooldown
        )
        self.introspection_url = f"{idp_url}/introspect"

    async def _handle(self, request: web.Request) -> web.Response:
        need = NEEDS.get(request.path)
        if need is None:
            return web.json_response({"error": "not_found"}, status=404)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return web.json_response({"error": "invalid_request"}, status=401)
        try:
            claims = await (self._verify(token) if self.mode == "jwt" else self._introspect(token))
        except IdPUnavailable as error:
            return web.json_response(
                {"error": "temporarily_unavailable", "error_description": str(error)}, status=503
            )
        except (jwt.PyJWTError, LookupError) as error:
            return web.json_response(
                {"error": "invalid_token", "error_description": str(error)}, status=401
            )
        if need not in str(claims.get("scope", "")).split():
            return web.json_response({"error": "insufficient_scope"}, status=403)
        return web.json_response({"sub": claims.get("sub"), "ok": True})

    async def _verify(self, token: str) -> dict[str, Any]:
        assert self.jwks is not None
        key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256", "ES256"],
            audience="jitchaos",
            issuer=self.issuer,
            leeway=self.leeway,
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
        return claims

    async def _introspect(self, token: str) -> dict[str, Any]:
        assert self.introspection_url is not None
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    self.introspection_url,
                    data={"token": token},
                    headers={"Authorization": aiohttp.encode_basic_auth("api", "api-secret")},
                ) as response,
            ):
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as error:
            raise IdPUnavailable(f"introspection failed: {error}") from None
        if response.status >= 500 or not isinstance(data, dict):
            raise IdPUnavailable(f"introspection answered {response.status}")
        if response.status != 200 or data.get("active") is not True:
            raise LookupError(f"introspection says inactive ({response.status})")
        return data

    @contextmanager
    def in_thread(self) -> Iterator[ResourceService]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        with served(app) as self.url:
            yield self


def healthy_app() -> web.Application:
    """A service that reads every request whole and answers 200, whatever it carries."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="handled")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@contextmanager
def served(app: web.Application, port: int = 0, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on ``host`` (``port``, 0 for a free one) in a background thread; yields
    its base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    with BackgroundLoop(name="served-app") as loop:

        async def start() -> str:
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            return f"http://{host}:{runner.addresses[0][1]}"

        url = loop.run(start())
        try:
            yield url
        finally:
            loop.run(runner.cleanup())
