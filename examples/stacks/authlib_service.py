"""A resource server on Authlib's ``ResourceProtector`` and RFC 9068 ``JWTBearerTokenValidator``
(``python -m examples.stacks.authlib_service IDP PORT``). Authlib leaves fetching the key set to
the application (``get_jwks``); this one does what its documentation shows, with the limits
PyJWKClient and jose use: the key set cached 300 s, an unknown kid refetched at most every 30 s.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import jwt
import requests
from aiohttp import web
from authlib.oauth2 import ResourceProtector
from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.requests import JsonRequest
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc.jwk import KeySet

from jitchaos.known_bugs._service import Unavailable, service

MAX_AGE = 300.0
COOLDOWN = 30.0


class _KeySetCache:
    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._jwks: dict[str, Any] | None = None
        self._fetched = float("-inf")

    def get(self, kid: str | None) -> dict[str, Any]:
        with self._lock:
            age = time.monotonic() - self._fetched
            known = self._jwks is not None and any(
                key.get("kid") == kid for key in self._jwks["keys"]
            )
            if self._jwks is None or age > MAX_AGE or (not known and age > COOLDOWN):
                try:
                    answer = requests.get(self._url, timeout=5)
                    answer.raise_for_status()
                    self._jwks = answer.json()
                except (requests.RequestException, ValueError) as error:
                    if self._jwks is None:
                        raise Unavailable(f"JWKS: {error}") from None
                    return self._jwks  # keep what we had through an outage
                self._fetched = time.monotonic()
            assert self._jwks is not None
            return self._jwks


def make_app(idp_url: str) -> web.Application:
    cache = _KeySetCache(f"{idp_url}/jwks")
    current: dict[str, str | None] = {"kid": None}

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            jwks: Any = cache.get(current["kid"])
            return KeySet.import_key_set(jwks)

    protector = ResourceProtector()
    protector.register_token_validator(Validator(issuer=idp_url, resource_server="jitchaos"))

    def validate(token: str) -> frozenset[str] | None:
        try:
            current["kid"] = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        request = JsonRequest("GET", "http://service/", {"Authorization": f"Bearer {token}"})
        try:
            claims = protector.validate_request([], request)
        except OAuth2Error:
            return None
        return frozenset(str(claims.get("scope", "")).split())

    lock = threading.Lock()  # one validation at a time: ``current`` is shared

    def locked(token: str) -> frozenset[str] | None:
        with lock:
            return validate(token)

    async def check(token: str) -> frozenset[str] | None:
        return await asyncio.to_thread(locked, token)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = service(check)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), print=None)
