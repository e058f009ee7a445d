"""The upstream IdP as the proxy sees it: its discovery document, its endpoints and its keys.

Only URLs from the configured upstream and its own discovery document are ever contacted: the
proxy never takes a target from a request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import jwt
from yarl import URL

from jitchaos._wire import oauth_error, resolve_dot_segments

__all__ = [
    "ENDPOINT_PATHS",
    "Forward",
    "Forwarded",
    "UpstreamError",
    "UpstreamIdP",
    "path_key",
]

# Discovery field -> (path the proxy serves it at, endpoint name in the fault vocabulary).
ENDPOINT_PATHS: dict[str, tuple[str, str]] = {
    "token_endpoint": ("/token", "token"),
    "introspection_endpoint": ("/introspect", "introspection"),
    "revocation_endpoint": ("/revoke", "revocation"),
    "userinfo_endpoint": ("/userinfo", "userinfo"),
    "jwks_uri": ("/jwks", "jwks"),
    "authorization_endpoint": ("/authorize", "other"),
    "end_session_endpoint": ("/logout", "other"),
}
_SERVED_AT = tuple(served_at for served_at, _ in ENDPOINT_PATHS.values())
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
_JWKS_REFETCH = 5.0  # monotonic seconds between JWKS refetches for an unknown kid


def path_key(path: str) -> str:
    """What a request path means to a lenient server, so that no spelling of an endpoint's
    path slips past the proxy's handling of it: ``;parameters`` dropped from each segment (as
    Tomcat and JAX-RS do, also ``..;``), dot segments resolved (RFC 3986 §5.2.4: an empty
    segment counts, as it does for the URL the proxy forwards, so ``/a//../token`` is
    ``/a/token``), then empty segments dropped (``//token``, ``/token/``) and case folded
    (ASP.NET routing ignores it)."""
    segments = resolve_dot_segments(segment.partition(";")[0] for segment in path.split("/")[1:])
    return "/" + "/".join(segment.lower() for segment in segments if segment)


class UpstreamError(Exception):
    """The upstream IdP failed or answered something unusable; becomes a 502/504 answer."""

    def __init__(self, status: int, upstream: str, why: str) -> None:
        super().__init__(f"upstream {upstream}: {why}")
        self.status = status
        self.upstream = upstream
        self.why = why


class ForeignEndpoint(UpstreamError):
    """The discovery document names an endpoint on an origin the proxy was not given."""


@attrs.frozen
class Forwarded:
    """An upstream answer, read whole."""

    status: int
    headers: tuple[tuple[str, str], ...]
    """In the upstream's order, repeated fields (Set-Cookie) kept."""
    body: bytes

    def json_object(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None when it is not one."""
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None


Forward = Callable[[str, URL, dict[str, str], bytes], Awaitable[Forwarded]]
"""Sends one request upstream and reads the answer whole: (method, url, headers, body)."""


class UpstreamIdP:
    """Discovery, endpoint map and key cache of one upstream IdP."""

    def __init__(
        self,
        url: str,
        *,
        own: frozenset[URL] = frozenset(),
        alias: bool = False,
        allowed: frozenset[URL] = frozenset(),
    ) -> None:
        """``own`` are the proxy's own origins: a discovery document pointing there would make
        the proxy call itself. With ``alias`` (an embedded IdP whose issuer is the proxy) such
        endpoints are taken to mean the upstream's own origin; otherwise they are refused.
        ``allowed`` are the other origins the discovery document may put endpoints on (an IdP
        whose JWKS lives on a CDN); any other origin is refused (:class:`ForeignEndpoint`):
        client credentials and tokens go only where the user sent them."""
        self._own = own
        self._alias = alias
        self._allowed = allowed
        base = URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"upstream={url!r} must be an http(s) URL")
        path = base.path.rstrip("/")
        for suffix in DISCOVERY_PATHS:
            if path.endswith(suffix):
                self.discovery_url = base
                path = path.removesuffix(suffix)
                break
        else:
            self.discovery_url = base.with_path(path + DISCOVERY_PATHS[0])
        self.base = base.with_path(path or "/").with_query(None)
        self.origin = base.origin()
        self.metadata: dict[str, Any] | None = None
        self.endpoints: dict[str, URL] = {}
        # path_key of a request path -> the proxy path it is served at: the proxy's own paths,
        # discovery where the upstream serves it, and (once discovered) the upstream's own
        # spelling of each endpoint, so that none is an unwatched pass-through.
        self._known_routes = {path_key(own): own for own in (*_SERVED_AT, *DISCOVERY_PATHS)}
        for suffix in DISCOVERY_PATHS:
            for where in (path + suffix, suffix + path):  # OpenID's and RFC 8414's placement
                self._known_routes.setdefault(path_key(where), DISCOVERY_PATHS[0])
        self._routes = dict(self._known_routes)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_fetched = -_JWKS_REFETCH
        self._discovery_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return str(self.origin)

    def discovered(self) -> bool:
        return self.metadata is not None

    def route(self, *paths: str) -> str | None:
        """The proxy path (an endpoint's or discovery's) that the first of ``paths`` to reach
        one reaches, by any spelling, or None; the upstream's own endpoint paths are known
        once discovery is adopted."""
        for path in paths:
            routed = self._routes.get(path_key(path))
            if routed is not None:
                return routed
        return None

    def endpoint_url(self, path: str) -> URL | None:
        """Where the proxy path ``path`` goes upstream (None: not an endpoint path)."""
        for field, (served_at, _) in ENDPOINT_PATHS.items():
            if served_at == path:
                return self.endpoints.get(field)
        return None

    def adopt(self, metadata: dict[str, Any]) -> None:
        """Take a discovery document: remember where each endpoint really is."""
        if not isinstance(metadata.get("issuer"), str):
            raise UpstreamError(502, self.name, "the discovery document has no issuer string")
        endpoints = {}
        for field in ENDPOINT_PATHS:
            value = metadata.get(field)
            if isinstance(value, str):
                url = URL(value)
                if url.scheme in ("http", "https") and url.host:
                    if url.origin() in self._own:
                        if not self._alias:
                            raise UpstreamError(
                                502,
                                self.name,
                                f"the discovery document's {field} points back at the proxy",
                            )
                        url = self.origin.join(url.relative())
                    elif url.origin() != self.origin and url.origin() not in self._allowed:
                        raise ForeignEndpoint(
                            502,
                            self.name,
                            f"the discovery document's {field} is on {url.origin()}, not on "
                            f"the upstream's origin {self.origin}: client credentials and "
                            "tokens go only to the configured upstream (allow that origin "
                            "explicitly: --allow-origin, or ChaosProxy(allow_origins=...))",
                        )
                    endpoints[field] = url
        if "token_endpoint" not in endpoints:
            raise UpstreamError(
                502, self.name, "the discovery document names no http(s) token_endpoint"
            )
        self.metadata = metadata
        self.endpoints = endpoints
        routes = dict(self._known_routes)
        for field, url in endpoints.items():
            # Whatever origin the IdP names (its public hostname, https behind a terminator),
            # a request path goes to the configured origin, which may well serve it.
            routes.setdefault(path_key(url.path), ENDPOINT_PATHS[field][0])
        self._routes = routes

    async def ensure_discovered(self, forward: Forward) -> None:
        """Fetch discovery once (before routing a request that needs the endpoint map)."""
        if self.discovered():
            return
        async with self._discovery_lock:
            if self.discovered():  # another request fetched it while this one waited
                return
            answer = await forward("GET", self.discovery_url, {}, b"")
            self.adopt_answer(answer)

    def adopt_answer(self, answer: Forwarded) -> dict[str, Any]:
        if answer.status != 200:
            raise UpstreamError(
                502, self.name, f"discovery answered HTTP {answer.status}, not 200"
            )
        metadata = answer.json_object()
        if metadata is None:
            raise UpstreamError(502, self.name, "the discovery document is not a JSON object")
        self.adopt(metadata)
        return metadata

    # Keys (for reading and re-signing what the upstream issues).

    async def key(self, kid: str | None, forward: Forward) -> jwt.PyJWK | None:
        """The upstream's published key ``kid``, refetching the JWKS for an unknown kid (at
        most every few seconds, so a flood of bad kids cannot hammer the IdP)."""
        if kid in self._keys:
            return self._keys[kid]
        if time.monotonic() - self._keys_fetched < _JWKS_REFETCH:
            return None
        self._keys_fetched = time.monotonic()
        await self.ensure_discovered(forward)
        jwks_url = self.endpoints.get("jwks_uri")
        if jwks_url is None:
            return None
        answer = await forward("GET", jwks_url, {}, b"")
        data = answer.json_object() if answer.status == 200 else None
        keys = data.get("keys") if data else None
        if not isinstance(keys, list):
            raise UpstreamError(502, self.name, "the JWKS is not a JSON object with keys")
        fresh = {}
        for jwk in keys:
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                try:
                    fresh[jwk["kid"]] = jwt.PyJWK(jwk)
                except (jwt.PyJWKError, jwt.InvalidKeyError):
                    continue  # a key we cannot use is a key we do not trust
        self._keys = fresh
        return self._keys.get(kid) if kid is not None else None


def upstream_error_answer(error: UpstreamError) -> dict[str, str]:
    """The JSON body for a 502/504: which upstream, and why (RFC 6749 §5.2 field names)."""
    return oauth_error(
        "bad_gateway" if error.status == 502 else "gateway_timeout",
        str(error),
        upstream=error.upstream,
    )
