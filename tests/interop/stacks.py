"""The client stacks of the conformance matrix, each used as a service or client built on it
would use it, against one :class:`~tests.interop.targets.Target`.

Every stack runs the same checks, in order: ``discovery`` (read the metadata it needs),
``token`` (validate or obtain a token), ``rotation`` (after the target's key rotates, the same
configured instance accepts a token signed with the new key), ``introspection`` and ``errors``
(RFC 7662 answers and RFC 6749 §5.2 errors, read through the library's own API). A check a
library has no API for is ``n/a``. Node stacks run in their own process
(``tests/interop/node/stacks.mjs``), from the packages ``make test`` installs from the lock file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2 import ResourceProtector
from authlib.oauth2.rfc6749.requests import JsonRequest
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc7662 import IntrospectTokenValidator
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.common.idp import authorize, web_session
from tests.interop.targets import Target

CHECKS = ("discovery", "token", "rotation", "introspection", "errors")
NODE_DIR = Path(__file__).parent / "node"

Check = Callable[[], None] | None


def _run(checks: dict[str, Check]) -> dict[str, str]:
    assert tuple(checks) == CHECKS
    results = {}
    for name, check in checks.items():
        if check is None:
            results[name] = "n/a"
            continue
        try:
            check()
        except Exception as error:  # a failed check fails only itself
            results[name] = f"fail: {type(error).__name__}: {error}"
        else:
            results[name] = "pass"
    return results


def _metadata(target: Target) -> dict[str, Any]:
    response = requests.get(target.discovery_url, timeout=10)
    response.raise_for_status()
    metadata: dict[str, Any] = response.json()
    assert metadata["issuer"] == target.issuer, metadata["issuer"]
    return metadata


def _service_token(metadata: dict[str, Any], scope: str = "read") -> str:
    response = requests.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": scope},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _new_kid(before: str, token: str) -> None:
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid != before, "the token after rotation has the old kid"


def pyjwt(target: Target) -> dict[str, str]:
    """PyJWT's ``PyJWKClient`` with its cache, and ``jwt.decode`` pinned as RFC 9068 says."""
    state: dict[str, Any] = {}

    def verify(token: str) -> dict[str, Any]:
        key = state["client"].get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=target.audience,
            issuer=target.issuer,
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
        return claims

    def discovery() -> None:
        state["metadata"] = _metadata(target)
        # Cooldown 0: the matrix asks whether a rotated key is read, not how soon.
        state["client"] = jwt.PyJWKClient(state["metadata"]["jwks_uri"], cooldown_duration=0)

    def token() -> None:
        issued = _service_token(state["metadata"])
        state["kid"] = jwt.get_unverified_header(issued)["kid"]
        assert verify(issued)["scope"] == "read"

    def rotation() -> None:
        target.rotate()
        issued = _service_token(state["metadata"])
        _new_kid(state["kid"], issued)
        verify(issued)

    return _run(
        {
            "discovery": discovery,
            "token": token,
            "rotation": rotation,
            "introspection": None,
            "errors": None,
        }
    )


def joserfc(target: Target) -> dict[str, str]:
    """joserfc: the key set imported from the JWKS (refetched on an unknown kid), the claims
    checked with a ``JWTClaimsRegistry``."""
    state: dict[str, Any] = {}

    def key_set() -> KeySet:
        jwks = requests.get(state["metadata"]["jwks_uri"], timeout=10).json()
        return KeySet.import_key_set(jwks)

    def verify(token: str) -> None:
        kid = jwt.get_unverified_header(token)["kid"]
        if all(key.kid != kid for key in state["keys"]):
            state["keys"] = key_set()
        decoded = jose_jwt.decode(token, state["keys"], algorithms=["RS256"])
        assert decoded.header["typ"] == "at+jwt"
        registry = jose_jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": target.issuer},
            aud={"essential": True, "value": target.audience},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )
        registry.validate(decoded.claims)

    def discovery() -> None:
        state["metadata"] = _metadata(target)
        state["keys"] = key_set()

    def token() -> None:
        issued = _service_token(state["metadata"])
        state["kid"] = jwt.get_unverified_header(issued)["kid"]
        verify(issued)

    def rotation() -> None:
        target.rotate()
        issued = _service_token(state["metadata"])
        _new_kid(state["kid"], issued)
        verify(issued)

    return _run(
        {
            "discovery": discovery,
            "token": token,
            "rotation": rotation,
            "introspection": None,
            "errors": None,
        }
    )


def authlib_resource(target: Target) -> dict[str, str]:
    """Authlib's ``ResourceProtector`` with its RFC 9068 JWT validator (key set cached,
    refetched on an unknown kid) and, for opaque handling, its RFC 7662 introspection
    validator."""
    state: dict[str, Any] = {}

    class JwtValidator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return KeySet.import_key_set(state["jwks"])

    class Introspecting(IntrospectTokenValidator):  # type: ignore[misc]
        def introspect_token(self, token_string: str) -> dict[str, Any]:
            response = requests.post(
                state["metadata"]["introspection_endpoint"],
                data={"token": token_string, "token_type_hint": "access_token"},
                auth=("api", "api-secret"),
                timeout=10,
            )
            response.raise_for_status()
            return dict(response.json())

    def protected(validator: Any, token: str, scope: str = "read") -> Any:
        protector = ResourceProtector()
        protector.register_token_validator(validator)
        request = JsonRequest("GET", "http://api.test/read", {"Authorization": f"Bearer {token}"})
        return protector.validate_request([scope], request)

    def verify(token: str) -> Any:
        kid = jwt.get_unverified_header(token)["kid"]
        if all(key.get("kid") != kid for key in state["jwks"]["keys"]):
            state["jwks"] = requests.get(state["metadata"]["jwks_uri"], timeout=10).json()
        return protected(JwtValidator(target.issuer, target.audience), token)

    def discovery() -> None:
        state["metadata"] = _metadata(target)
        state["jwks"] = requests.get(state["metadata"]["jwks_uri"], timeout=10).json()

    def token() -> None:
        issued = _service_token(state["metadata"])
        state["token"] = issued
        state["kid"] = jwt.get_unverified_header(issued)["kid"]
        claims = verify(issued)
        assert claims["client_id"] == "svc"
        try:
            verify(issued[:-4] + "AAAA")
        except InvalidTokenError:
            pass
        else:
            raise AssertionError("a token with a broken signature was accepted")

    def rotation() -> None:
        target.rotate()
        issued = _service_token(state["metadata"])
        _new_kid(state["kid"], issued)
        verify(issued)

    def introspection() -> None:
        answer = protected(Introspecting(), state["token"])
        assert answer["active"] is True
        assert answer["client_id"] == "svc"
        requests.post(
            state["metadata"]["revocation_endpoint"],
            data={"token": state["token"]},
            auth=("svc", "svc-secret"),
            timeout=10,
        ).raise_for_status()
        try:
            protected(Introspecting(), state["token"])
        except InvalidTokenError:
            return
        raise AssertionError("a revoked token passed the introspection validator")

    return _run(
        {
            "discovery": discovery,
            "token": token,
            "rotation": rotation,
            "introspection": introspection,
            "errors": None,
        }
    )


def authlib_client(target: Target) -> dict[str, str]:
    """Authlib's ``OAuth2Session``: client credentials, authorization code with PKCE, refresh,
    introspection, revocation, and RFC 6749 §5.2 errors raised as ``OAuthError``."""
    state: dict[str, Any] = {}

    def discovery() -> None:
        state["metadata"] = _metadata(target)

    def token() -> None:
        session = OAuth2Session("svc", "svc-secret", scope="read")
        granted = session.fetch_token(
            state["metadata"]["token_endpoint"], grant_type="client_credentials"
        )
        assert granted["token_type"].lower() == "bearer"
        assert granted["scope"] == "read"
        state["token"] = granted["access_token"]
        web = web_session()
        user = authorize(_Endpoints(target.url), web, "alice")
        state["web"], state["user"] = web, user
        state["id_kid"] = jwt.get_unverified_header(user["id_token"])["kid"]
        refreshed = web.refresh_token(
            state["metadata"]["token_endpoint"], refresh_token=user["refresh_token"]
        )
        assert refreshed["refresh_token"] != user["refresh_token"]
        state["refresh"] = refreshed["refresh_token"]

    def rotation() -> None:
        target.rotate()
        # A new login after the rotation: its ID token carries the new kid.
        web = web_session()
        user = authorize(_Endpoints(target.url), web, "alice")
        _new_kid(state["id_kid"], user["id_token"])
        web.refresh_token(state["metadata"]["token_endpoint"], refresh_token=user["refresh_token"])

    def introspection() -> None:
        resource = OAuth2Session("api", "api-secret")
        endpoint = state["metadata"]["introspection_endpoint"]
        answer = resource.introspect_token(endpoint, token=state["token"]).json()
        assert answer["active"] is True, answer
        assert answer["scope"] == "read"
        service = OAuth2Session("svc", "svc-secret")
        revoked = service.revoke_token(
            state["metadata"]["revocation_endpoint"], token=state["token"]
        )
        assert revoked.status_code == 200
        assert resource.introspect_token(endpoint, token=state["token"]).json() == {
            "active": False
        }

    def errors() -> None:
        endpoint = state["metadata"]["token_endpoint"]
        for client_secret, scope, expected in (
            ("svc-secret", "no-such-scope", "invalid_scope"),
            ("wrong-secret", "read", "invalid_client"),
        ):
            session = OAuth2Session("svc", client_secret, scope=scope)
            with pytest.raises(OAuthError) as raised:
                session.fetch_token(endpoint, grant_type="client_credentials")
            assert raised.value.error == expected, raised.value.error
            assert raised.value.description
        with pytest.raises(OAuthError) as raised:
            state["web"].refresh_token(endpoint, refresh_token="not-a-refresh-token")
        assert raised.value.error == "invalid_grant", raised.value.error

    return _run(
        {
            "discovery": discovery,
            "token": token,
            "rotation": rotation,
            "introspection": introspection,
            "errors": errors,
        }
    )


class _Endpoints:
    def __init__(self, url: str) -> None:
        self.url = url


def node(stack: str) -> Callable[[Target], dict[str, str]]:
    """The Node stack ``stack`` of ``stacks.mjs``, in its own process."""

    def run(target: Target) -> dict[str, str]:
        executable = shutil.which("node")
        assert executable is not None, "node is not on PATH (make test needs node and npm)"
        assert (NODE_DIR / "node_modules").is_dir(), (
            f"{NODE_DIR}/node_modules is missing: run make test (npm ci from the lock file)"
        )
        process = subprocess.Popen(
            [executable, "stacks.mjs", stack, json.dumps(target.client_config())],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            for line in process.stdout:
                message = json.loads(line)
                if message.get("rotate"):
                    target.rotate()
                    process.stdin.write("rotated\n")
                    process.stdin.flush()
                elif "results" in message:
                    return dict(message["results"])
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"node {stack} gave no results: {stderr[-2000:]}")
        finally:
            process.kill()
            process.wait(timeout=10)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    return run


STACKS: dict[str, tuple[str, str, Callable[[Target], dict[str, str]]]] = {
    "pyjwt": ("Python", "PyJWT `PyJWKClient` + `jwt.decode`", pyjwt),
    "authlib-resource": (
        "Python",
        "Authlib `ResourceProtector` (RFC 9068, RFC 7662)",
        authlib_resource,
    ),
    "authlib-client": ("Python", "Authlib `OAuth2Session`", authlib_client),
    "joserfc": ("Python", "joserfc `KeySet` + `JWTClaimsRegistry`", joserfc),
    "jose": ("Node", "jose `createRemoteJWKSet` + `jwtVerify`", node("jose")),
    "jwks-rsa": ("Node", "express-jwt + jwks-rsa", node("jwks-rsa")),
    "openid-client": ("Node", "openid-client", node("openid-client")),
}
"""name -> (language, what it is, how it runs)."""
