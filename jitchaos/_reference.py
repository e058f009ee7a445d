"""A correct resource server: what a client under test calls while its credentials change.

It introspects every request (RFC 7662, no cache), so it refuses a token the moment the IdP
does; the client's own mistakes (a dead token presented again and again, a refresh storm) are
then all that the checker can find.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping

import aiohttp
from aiohttp import web

from jitchaos._wire import bearer_token

__all__ = ["reference_service"]

_SESSION = web.AppKey("jitchaos-reference-session", aiohttp.ClientSession)


def reference_service(
    *, idp_url: str, routes: Mapping[str, Collection[str]], client: tuple[str, str]
) -> web.Application:
    """An app answering ``routes`` (``"METHOD /path"`` -> scopes): 401 for a token the IdP's
    introspection calls inactive, 403 for missing scopes, 503 when the IdP cannot answer."""
    needs = {route: frozenset(scopes) for route, scopes in routes.items()}
    basic = "Basic " + base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()

    async def handle(request: web.Request) -> web.Response:
        need = needs.get(f"{request.method} {request.path}")
        if need is None:
            return web.json_response({"error": "not_found"}, status=404)
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is None:
            return _refuse(401, "invalid_request")
        try:
            async with request.app[_SESSION].post(
                f"{idp_url}/introspect", data={"token": token}, headers={"Authorization": basic}
            ) as answer:
                data = await answer.json(content_type=None)
                status = answer.status
        except (aiohttp.ClientError, ValueError):
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        if status != 200 or not isinstance(data, dict):
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        if data.get("active") is not True:
            return _refuse(401, "invalid_token")
        if not need <= frozenset(str(data.get("scope", "")).split()):
            return _refuse(403, "insufficient_scope")
        return web.json_response({"ok": True, "sub": data.get("sub")})

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app[_SESSION] = aiohttp.ClientSession()
        yield
        await app[_SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _refuse(status: int, error: str) -> web.Response:
    return web.json_response(
        {"error": error},
        status=status,
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )
