"""A resource server on Authlib's ``ResourceProtector``, with RFC 9068's
``JWTBearerTokenValidator`` or, given ``--introspect``, RFC 7662's ``IntrospectTokenValidator``.

Usage: python -m examples.stacks.authlib_service IDP PORT [--issuer ISS] [--audience AUD]
                                                 [--introspect ID:SECRET [--cache SECONDS]]

Authlib leaves fetching the key set to the application (``get_jwks``); this one does what its
documentation shows, with the limits PyJWKClient and jose use: the key set cached 300 s, an
unknown kid refetched at most every 30 s.

With ``--introspect`` it asks the IdP's introspection endpoint (as that client) about each token,
as Authlib's documentation shows. ``--cache`` is the known bug this stack is tested with: the
answers remembered that many seconds, a common fix for introspection's latency. Authlib's
validator trusts ``active`` and never looks at ``exp``, so a cached answer keeps a revoked,
narrowed or expired token alive until it ages out. Without ``--cache`` the service is the
correct twin.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

import jwt
import requests
from aiohttp import web
from authlib.oauth2 import ResourceProtector
from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6749.requests import JsonRequest
from authlib.oauth2.rfc7662 import IntrospectTokenValidator
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


class _Introspection(IntrospectTokenValidator):  # type: ignore[misc]
    """What Authlib's documentation shows, with its answers kept ``cache`` seconds."""

    def __init__(self, idp_url: str, client: tuple[str, str], cache: float) -> None:
        super().__init__()
        self._idp, self._client, self._cache = idp_url, client, cache
        self._url: str | None = None  # from the IdP's discovery document, at first use
        self._answers: dict[str, tuple[float, dict[str, Any]]] = {}

    def introspect_token(self, token_string: str) -> dict[str, Any]:
        hit = self._answers.get(token_string)
        if hit is not None and time.monotonic() - hit[0] < self._cache:
            return hit[1]
        try:
            if self._url is None:
                found = requests.get(f"{self._idp}/.well-known/openid-configuration", timeout=5)
                found.raise_for_status()
                self._url = str(found.json()["introspection_endpoint"])
            answer = requests.post(
                self._url, data={"token": token_string}, auth=self._client, timeout=5
            )
            answer.raise_for_status()
            claims: dict[str, Any] = answer.json()
        except (requests.RequestException, ValueError, KeyError) as error:
            raise Unavailable(f"introspection: {error}") from None
        if self._cache > 0:
            self._answers[token_string] = (time.monotonic(), claims)
        return claims


def make_app(
    idp_url: str,
    *,
    issuer: str | None = None,
    audience: str = "jitchaos",
    introspect: tuple[str, str] | None = None,
    cache: float = 0.0,
) -> web.Application:
    keys = _KeySetCache(f"{idp_url}/jwks")
    current: dict[str, str | None] = {"kid": None}

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            jwks: Any = keys.get(current["kid"])
            return KeySet.import_key_set(jwks)

    protector = ResourceProtector()
    if introspect is not None:
        protector.register_token_validator(_Introspection(idp_url, introspect, cache))
    else:
        protector.register_token_validator(
            Validator(issuer=issuer if issuer is not None else idp_url, resource_server=audience)
        )

    def validate(token: str) -> frozenset[str] | None:
        if introspect is None:
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.stacks.authlib_service")
    parser.add_argument("idp", help="the IdP URL (its /jwks, or its introspection endpoint)")
    parser.add_argument("port", type=int)
    parser.add_argument("--issuer", help="the tokens' iss (default: IDP)")
    parser.add_argument("--audience", default="jitchaos", help="the tokens' aud")
    parser.add_argument("--introspect", metavar="ID:SECRET", help="introspect as this client")
    parser.add_argument("--cache", type=float, default=0.0, help="the bug: answers kept (s)")
    args = parser.parse_args()
    client = None
    if args.introspect is not None:
        client_id, colon, secret = args.introspect.partition(":")
        if not colon:
            parser.error("--introspect must be ID:SECRET")
        client = (client_id, secret)
    elif args.cache:
        parser.error("--cache needs --introspect")
    app = make_app(
        args.idp.rstrip("/"),
        issuer=args.issuer,
        audience=args.audience,
        introspect=client,
        cache=args.cache,
    )
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
