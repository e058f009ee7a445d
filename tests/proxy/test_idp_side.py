"""The IdP side: discovery rewritten, the ledger in step with what it sees, real clients
through it, and failure handled as answers (502/504, 403), never as crashes."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import jwt
import pytest
import requests
from aiohttp import web
from authlib.integrations.requests_client import OAuth2Session
from yarl import URL

from jitchaos import ManualClock, fingerprint
from jitchaos.faults import Expire, Narrow, Revoke
from jitchaos.idp import EmbeddedIdP
from jitchaos.proxy import ChaosProxy
from tests.common.idp import (
    authorize,
    client_credentials,
    introspect,
    refresh,
    standard_config,
    user_tokens,
    web_session,
)
from tests.common.service import served
from tests.proxy.conftest import Front


def test_discovery_sends_every_endpoint_through_the_proxy(front: Front, idp: EmbeddedIdP) -> None:
    proxy, _ = front()
    upstream = requests.get(idp.discovery_url, timeout=10).json()
    seen = requests.get(proxy.discovery_url, timeout=10).json()
    assert seen["issuer"] == upstream["issuer"] == idp.issuer  # tokens still say who issued them
    for field, path in [
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("authorization_endpoint", "/authorize"),
    ]:
        assert seen[field] == proxy.url + path
    rest = {k: v for k, v in seen.items() if not k.endswith(("_endpoint", "_uri"))}
    assert rest == {k: v for k, v in upstream.items() if not k.endswith(("_endpoint", "_uri"))}
    other = requests.get(f"{proxy.url}/.well-known/oauth-authorization-server", timeout=10)
    assert other.json()["token_endpoint"] == proxy.url + "/token"


def test_ledger_follows_grants_refreshes_and_revocations(front: Front) -> None:
    proxy, _ = front()
    tokens = user_tokens(proxy)
    fresh = refresh(proxy, tokens["refresh_token"]).json()
    requests.post(
        f"{proxy.url}/revoke",
        data={"token": fresh["refresh_token"]},
        auth=("web", "web-secret"),
        timeout=10,
    ).raise_for_status()
    kinds = [type(e).__name__ for e in proxy.ledger.events]
    assert kinds == ["Granted", "Refreshed", "Revoked"]
    granted, refreshed, revoked = proxy.ledger.events
    assert {t.fingerprint for t in granted.tokens} == {  # type: ignore[union-attr]
        fingerprint(tokens["access_token"]),
        fingerprint(tokens["refresh_token"]),
    }
    assert str(granted.principal) == "subject:alice"  # type: ignore[union-attr]
    assert refreshed.spent == fingerprint(tokens["refresh_token"])  # type: ignore[union-attr]
    assert fingerprint(fresh["access_token"]) in revoked.fingerprints  # type: ignore[union-attr]
    # The proxy's ledger agrees with the IdP's own about the token's status.
    assert introspect(proxy, fresh["access_token"]) == {"active": False}


def test_only_a_reuse_refusal_ends_the_grant_in_the_proxys_ledger(
    front: Front, idp: EmbeddedIdP
) -> None:
    """A spent refresh token presented again in a request the IdP refuses for another reason
    (here a bad ttl, checked before the token) ends nothing at the IdP. The proxy used to
    record a reuse revocation for any 400, and its ground truth then said revoked while the
    IdP still honoured the grant (found by the random-input test)."""
    proxy, _ = front()
    tokens = user_tokens(proxy)
    fresh = refresh(proxy, tokens["refresh_token"]).json()
    answer = refresh(proxy, tokens["refresh_token"], ttl="-1")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert [type(e).__name__ for e in proxy.ledger.events] == ["Granted", "Refreshed"]
    assert [type(e).__name__ for e in idp.ledger.events] == ["Granted", "Refreshed"]
    assert introspect(proxy, fresh["access_token"])["active"] is True
    answer = refresh(proxy, tokens["refresh_token"])  # a real reuse: the IdP ends the family
    assert answer.json()["error"] == "invalid_grant"
    assert [type(e).__name__ for e in proxy.ledger.events][-1] == "Revoked"
    assert introspect(proxy, fresh["access_token"]) == {"active": False}


def test_authlib_refreshes_through_the_proxy_on_its_own_timer(
    front: Front, clock: ManualClock, insecure_transport: None
) -> None:
    proxy, _ = front("jwt")
    session = web_session()
    proxy.apply(Expire(issued_ttl=5))
    token = authorize(proxy, session, "alice")
    assert token["expires_in"] == 5
    metadata = requests.get(proxy.discovery_url, timeout=10).json()
    session = OAuth2Session(
        "web",
        "web-secret",
        token=token,
        token_endpoint=metadata["token_endpoint"],
        scope="openid read write",
    )
    with clock.freeze():
        assert session.get(proxy.service_url("api") + "/read", timeout=10).status_code == 200
        clock.advance(6)
        # authlib sees expires_at passed and refreshes through the proxy before the request.
        assert session.get(proxy.service_url("api") + "/read", timeout=10).status_code == 200
    assert session.token["access_token"] != token["access_token"]
    assert [type(e).__name__ for e in proxy.ledger.events] == ["Granted", "Refreshed"]


def test_authlib_refresh_after_narrowing_gets_the_narrowed_token(
    front: Front, insecure_transport: None
) -> None:
    proxy, _ = front("jwt")
    session = web_session()
    token = authorize(proxy, session, "alice")
    proxy.apply(Narrow(scopes=frozenset({"read"}), target="principal:subject:alice"))
    fresh = session.refresh_token(f"{proxy.url}/token", refresh_token=token["refresh_token"])
    assert fresh["scope"] == "read"
    body = jwt.decode(fresh["access_token"], options={"verify_signature": False})
    assert body["scope"] == "read"


def test_userinfo_through_the_proxy_refuses_a_revoked_token(front: Front) -> None:
    proxy, _ = front()
    tokens = user_tokens(proxy)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{proxy.url}/userinfo", headers=headers, timeout=10).json()["sub"] == (
        "alice"
    )
    proxy.apply(Revoke(target="grant:g1"))
    answer = requests.get(f"{proxy.url}/userinfo", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_upstream_down_502_then_recovers(clock: ManualClock) -> None:
    port = free_port()
    with ChaosProxy(f"http://127.0.0.1:{port}", clock=clock).in_thread() as proxy:
        answer = requests.get(proxy.discovery_url, timeout=10)
        assert answer.status_code == 502
        body = answer.json()
        assert body["error"] == "bad_gateway"
        assert body["upstream"] == f"http://127.0.0.1:{port}"
        assert "unreachable" in body["error_description"]
        token = requests.post(
            f"{proxy.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret"),
            timeout=10,
        )
        assert token.status_code == 502
        with EmbeddedIdP(standard_config(), clock=clock).in_thread(port=port):
            assert requests.get(proxy.discovery_url, timeout=10).status_code == 200
            assert client_credentials(proxy, "read")["access_token"]
        # Down again, after discovery was learnt: still a clean 502.
        answer = requests.post(
            f"{proxy.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret"),
            timeout=10,
        )
        assert answer.status_code == 502
        assert answer.json()["upstream"] == f"http://127.0.0.1:{port}"


def test_slow_upstream_504(clock: ManualClock) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    with (
        served(app) as url,
        ChaosProxy(url, clock=clock, upstream_timeout=0.2).in_thread() as proxy,
    ):
        answer = requests.get(proxy.discovery_url, timeout=10)
        assert answer.status_code == 504
        assert answer.json()["error"] == "gateway_timeout"
        assert "no answer within 0.2s" in answer.json()["error_description"]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"<html>not json</html>", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"issuer": "x"}', "no http(s) token_endpoint"),
        (b'{"issuer": "x", "token_endpoint": "ftp://x/token"}', "no http(s) token_endpoint"),
        (b'{"token_endpoint": "http://127.0.0.1:1/token"}', "no issuer"),
    ],
)
def test_malformed_discovery_is_a_502_not_a_crash(
    clock: ManualClock, document: bytes, why: str
) -> None:
    async def discovery(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", discovery)
    with served(app) as url, ChaosProxy(url, clock=clock).in_thread() as proxy:
        for _ in range(2):
            answer = requests.get(proxy.discovery_url, timeout=10)
            assert answer.status_code == 502
            assert why in answer.json()["error_description"]
        answer = requests.post(f"{proxy.url}/token", data={"grant_type": "x"}, timeout=10)
        assert answer.status_code == 502


def raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("side", ["idp", "service"])
def test_requests_for_other_targets_are_refused(front: Front, side: str) -> None:
    proxy, _ = front()
    base = proxy.url if side == "idp" else proxy.service_url("api")
    for request in [
        b"GET http://example.com/read HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    ]:
        answer = raw_request(base, request)
        assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
        assert b"forwards only to the upstream and services it was configured with" in answer
    assert proxy.history.decisions == ()


def test_requests_without_host_on_both_sides(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, _ = front()
    discovery = b"GET /.well-known/openid-configuration HTTP/1.%d\r\nConnection: close\r\n\r\n"
    answer = raw_request(proxy.url, discovery % 0)
    assert answer.startswith(b"HTTP/1.1 200")
    endpoints = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert endpoints["token_endpoint"] == f"{proxy.url}/token"  # the listener's own address
    answer = raw_request(proxy.url, discovery % 1)
    assert answer.startswith(b"HTTP/1.1 400")
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "error": "invalid_request",
        "error_description": "an HTTP/1.1 request needs a Host header",
    }
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        answer = raw_request(
            proxy.service_url("api"), b"GET /read HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
    assert b" 400 " in answer.split(b"\r\n")[0]
    # aiohttp's own log line said ERROR with a traceback; a client's mistake is one warning.
    (record,) = [r for r in caplog.records if r.name.startswith(("jitchaos", "aiohttp"))]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "not valid HTTP (answered 400)" in record.getMessage()
    assert "Host" in record.getMessage()
    assert proxy.history.decisions == ()


@pytest.mark.parametrize("side", ["idp", "service"])
@pytest.mark.parametrize(
    "host", [b"<x>", b"a b", b"\xff", b"a/b", b"user@h", b"h:12:34", b"[::1::2]", b"[:]", b"[.]"]
)
def test_a_malformed_host_is_refused_not_reflected(front: Front, side: str, host: bytes) -> None:
    proxy, _ = front()
    base = proxy.url if side == "idp" else proxy.service_url("api")
    port = base.rsplit(":", 1)[1].encode()
    path = b"/.well-known/openid-configuration" if side == "idp" else b"/read"
    answer = raw_request(
        base,
        b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b":" + port + b"\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"is not host[:port]" in answer
    assert proxy.history.decisions == ()


def test_garbage_on_every_endpoint_never_crashes(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, _ = front("introspect")
    garbage = [
        ("POST", "/token", {"Content-Type": "application/x-www-form-urlencoded"}, b"%%%&&&=="),
        ("POST", "/token", {"Content-Type": "application/x-www-form-urlencoded"}, b"\xff\xfe"),
        ("POST", "/token", {"Content-Type": "application/json"}, b'{"grant_type": 1}'),
        ("POST", "/token", {}, b"grant_type=refresh_token&refresh_token="),
        (
            "POST",
            "/introspect",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"token=a.b.c",
        ),
        ("POST", "/revoke", {"Content-Type": "application/x-www-form-urlencoded"}, b"token=%00"),
        ("GET", "/userinfo", {"Authorization": "Bearer e30.e30.e30"}, b""),
        ("GET", "/userinfo", {"Authorization": "Bearer"}, b""),
        ("GET", "/jwks?x=%ZZ", {}, b""),
        ("DELETE", "/.well-known/openid-configuration", {}, b""),
    ]
    for method, path, headers, body in garbage:
        answer = requests.request(method, proxy.url + path, headers=headers, data=body, timeout=10)
        assert answer.status_code < 500, (path, body, answer.text)
    for header in [
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Basic Zm9vOmJhcg==",
        "Bearer " + "x" * 5000,
    ]:
        answer = requests.get(
            proxy.service_url("api") + "/read", headers={"Authorization": header}, timeout=10
        )
        assert answer.status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_raw_tokens_never_in_logs_history_or_audit(
    idp: EmbeddedIdP, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    from pathlib import Path

    from tests.common.service import ResourceService

    audit = Path(str(tmp_path)) / "proxy-audit.jsonl"
    caplog.set_level(logging.DEBUG)
    with (
        ResourceService("introspect").in_thread() as service,
        ChaosProxy(idp, services={"api": service.url}, audit=audit).in_thread() as proxy,
    ):
        service.point_at(proxy.url, issuer=idp.issuer)
        proxy.apply(Narrow(scopes=frozenset({"read"})))
        tokens = user_tokens(proxy)
        fresh = refresh(proxy, tokens["refresh_token"]).json()
        raw = [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]
        raw += [fresh["access_token"], fresh["refresh_token"]]
        for token in raw:
            requests.get(
                proxy.service_url("api") + "/read",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
        proxy.apply(Revoke(target=f"token:{fingerprint(fresh['access_token'])}"))
        history = json.dumps([e.to_json() for e in proxy.history.entries])
        control = requests.get(
            f"{proxy.control_url}/audit",
            headers={"Authorization": f"Bearer {proxy.secret}"},
            timeout=10,
        ).text
    written = audit.read_text() + history + control + caplog.text
    assert fingerprint(fresh["access_token"]) in written
    for token in raw:
        for part in {token, *token.split(".")}:
            if len(part) > 12:
                assert part not in written


def test_embedded_idp_started_by_the_proxy_issues_as_the_proxy(clock: ManualClock) -> None:
    with ChaosProxy(standard_config(), clock=clock).in_thread() as proxy:
        assert proxy.idp is not None
        assert proxy.idp.issuer == proxy.url
        token = client_credentials(proxy, "read")["access_token"]
        key = jwt.PyJWKClient(f"{proxy.url}/jwks").get_signing_key_from_jwt(token)
        body = jwt.decode(token, key, algorithms=["RS256"], audience="jitchaos", issuer=proxy.url)
        assert body["sub"] == "svc"
        assert len(proxy.ledger.grants) == len(proxy.idp.ledger.grants) == 1


def test_discovery_pointing_back_at_the_proxy_is_refused(clock: ManualClock) -> None:
    where: dict[str, str] = {}

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response({"issuer": "x", "token_endpoint": where["proxy"] + "/token"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", discovery)
    with served(app) as url, ChaosProxy(url, clock=clock).in_thread() as proxy:
        where["proxy"] = proxy.url
        answer = requests.post(f"{proxy.url}/token", data={"grant_type": "x"}, timeout=10)
        assert answer.status_code == 502
        assert "points back at the proxy" in answer.json()["error_description"]


def _token_request(path: str) -> bytes:
    body = b"grant_type=client_credentials&scope=read+write"
    return (
        f"POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        "Authorization: Basic c3ZjOnN2Yy1zZWNyZXQ=\r\n"  # svc:svc-secret
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _answer_json(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    document: dict[str, object] = json.loads(body)
    return document


@pytest.mark.parametrize(
    "path",
    [
        "/foo/../token",  # what the upstream is sent after dot segments are resolved
        "/%2e/token",
        "//token",
        "/token/",
        "/TOKEN",  # ASP.NET routes ignore case
        "/token;jsessionid=1",  # Tomcat and JAX-RS drop path parameters
        "/x/..;/token",
        "/to%FFken",  # yarl drops what does not decode: forwarded as /token
    ],
)
def test_every_spelling_of_the_token_path_goes_through_the_token_path(
    front: Front, path: str
) -> None:
    proxy, _ = front()
    proxy.apply(Narrow(scopes=frozenset({"read"})))
    raw = _token_request(path).replace(b"Host: h", f"Host: {proxy.url[7:]}".encode())
    issued = _answer_json(raw_request(proxy.url, raw))
    assert issued["scope"] == "read"  # the fault acted on it
    record = proxy.ledger.lookup(fingerprint(str(issued["access_token"])))
    assert record is not None
    assert record.token.scopes == {"read"}


@contextmanager
def keycloak_like(idp: EmbeddedIdP, host: str = "127.0.0.1") -> Iterator[str]:
    """The embedded IdP under a realm path, as Keycloak serves one: its discovery document
    names /realms/test/... endpoints, whose paths differ from the proxy's own, on ``host``
    (Keycloak names its public hostname, whatever the address it was reached at)."""
    prefix = "/realms/test"
    where: dict[str, str] = {}

    async def relay(request: web.Request) -> web.Response:
        tail = request.path.removeprefix(prefix)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                idp.url + tail,
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                data=await request.read(),
            ) as answer,
        ):
            body = await answer.read()
            if tail == "/.well-known/openid-configuration":
                named = where["url"].replace("127.0.0.1", host) + prefix
                body = body.replace(idp.url.encode(), named.encode())
                body = body.replace(
                    named.encode() + b'"', idp.url.encode() + b'"'
                )  # the issuer stays the IdP's own
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    app = web.Application()
    app.router.add_route("*", prefix + "/{tail:.*}", relay)
    with served(app) as url:
        where["url"] = url
        yield url + prefix


@pytest.mark.parametrize("named", ["127.0.0.1", "localhost"])
def test_the_upstreams_own_endpoint_paths_are_its_endpoints(
    idp: EmbeddedIdP, clock: ManualClock, named: str
) -> None:
    with keycloak_like(idp, named) as realm:
        # An upstream naming itself by another host name is another origin: allowed by name.
        named_origin = str(URL(realm.replace("127.0.0.1", named)).origin())
        with ChaosProxy(
            realm, clock=clock, resign=True, allow_origins=[named_origin]
        ).in_thread() as proxy:
            _own_paths_are_endpoints(proxy, realm, named)


def _own_paths_are_endpoints(proxy: ChaosProxy, realm: str, named: str) -> None:
    seen = requests.get(proxy.discovery_url, timeout=10).json()
    assert seen["token_endpoint"] == proxy.url + "/token"
    upstream = requests.get(realm + "/.well-known/openid-configuration", timeout=10).json()
    assert upstream["token_endpoint"] == realm.replace("127.0.0.1", named) + "/token"
    # A client configured with the upstream's own paths still goes through the proxy's
    # handling of each endpoint: its discovery rewritten, its tokens in the ledger.
    for spelling in (
        "/realms/test/.well-known/openid-configuration",
        "/.well-known/openid-configuration/realms/test",
    ):
        again = requests.get(proxy.url + spelling, timeout=10).json()
        assert again["token_endpoint"] == proxy.url + "/token", spelling
    for spelling in (
        "/realms/test/token",
        "/realms/TEST/token/",
        "/realms/test//../token",  # an empty segment is one: forwarded as the token path
    ):
        raw = _token_request(spelling).replace(b"Host: h", f"Host: {proxy.url[7:]}".encode())
        issued = _answer_json(raw_request(proxy.url, raw))
        assert proxy.ledger.lookup(fingerprint(str(issued["access_token"]))) is not None
    # Discovery answers GET and HEAD only; a POST is not forwarded un-rewritten.
    posted = requests.post(proxy.url + "/realms/test/.well-known/openid-configuration", timeout=10)
    assert posted.status_code == 405
    assert posted.headers["Allow"] == "GET, HEAD"
    assert posted.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/TOKEN/"])
def test_token_introspection_and_revocation_answer_post_only(front: Front, path: str) -> None:
    proxy, _ = front()
    # Form fields in a GET body: the proxy used to send them on as a POST and issue a token
    # that the IdP itself would have refused to the client.
    answer = requests.request(
        "GET",
        proxy.url + path,
        data={"grant_type": "client_credentials"},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.json()["error"] == "invalid_request"
    assert proxy.ledger.events == ()
    assert b"jitchaos_proxy_requests_total{" not in proxy.metrics.exposition()  # never forwarded


def test_repeated_upstream_fields_reach_the_client(clock: ManualClock) -> None:
    """A login page through the proxy sets several cookies (Keycloak sets three): a field the
    upstream repeats must not collapse to its last value."""

    async def discovery(request: web.Request) -> web.Response:
        origin = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": origin,
                "token_endpoint": origin + "/token",
                "authorization_endpoint": origin + "/auth",
            }
        )

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="<form>")
        response.headers.add("Set-Cookie", "AUTH_SESSION_ID=a; Path=/")
        response.headers.add("Set-Cookie", "KC_RESTART=b; Path=/")
        return response

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/auth", login)
    with served(app) as url, ChaosProxy(url, clock=clock).in_thread() as proxy:
        for path in ("/authorize", "/auth"):  # the proxy's path, and the upstream's own
            answer = requests.get(proxy.url + path, timeout=10)
            assert answer.status_code == 200
            assert answer.raw.headers.getlist("Set-Cookie") == [
                "AUTH_SESSION_ID=a; Path=/",
                "KC_RESTART=b; Path=/",
            ]


def test_service_paths_stay_under_the_services_base_path(
    idp: EmbeddedIdP, clock: ManualClock
) -> None:
    """``--service http://host/api``: dot segments cannot climb out of /api, and the history
    records the path the service was sent."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.path)

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    with (
        served(app) as url,
        ChaosProxy(idp, clock=clock, services={"api": url + "/api"}).in_thread() as proxy,
    ):
        base = proxy.service_url("api")
        for path, reached in [
            ("/../admin", "/api/admin"),
            ("/x/%2e%2e/%2E%2E/admin", "/api/admin"),
            ("/v1/./read", "/api/v1/read"),
        ]:
            request = f"GET {path} HTTP/1.1\r\nHost: {base[7:]}\r\nConnection: close\r\n\r\n"
            answer = raw_request(base, request.encode())
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert answer.partition(b"\r\n\r\n")[2].decode() == reached, path
        assert [d.path for d in proxy.history.decisions] == ["/admin", "/admin", "/v1/read"]


def test_pass_through_paths_are_forwarded_as_written_and_preflights_relayed(
    clock: ManualClock,
) -> None:
    """An authorize path keeps its ;jsessionid (Java IdPs' browser flows rely on it), and a
    CORS preflight for the token endpoint or discovery reaches the upstream as an OPTIONS."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.raw_path}")
        if request.path.startswith("/.well-known/") and request.method == "GET":
            origin = f"http://{request.host}"
            return web.json_response(
                {
                    "issuer": origin,
                    "token_endpoint": origin + "/oauth/token",
                    "authorization_endpoint": origin + "/oauth/authorize",
                }
            )
        cors = {"Access-Control-Allow-Origin": "https://app.example", "Allow": "POST, OPTIONS"}
        return web.Response(status=204 if request.method == "OPTIONS" else 200, headers=cors)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    with served(app) as url, ChaosProxy(url, clock=clock).in_thread() as proxy:
        answer = requests.get(
            proxy.url + "/oauth/authorize;jsessionid=ABC?client_id=c", timeout=10
        )
        assert answer.status_code == 200
        assert seen[-1] == "GET /oauth/authorize;jsessionid=ABC?client_id=c"
        for path, reached in [
            ("/token", "/oauth/token"),
            ("/oauth/token", "/oauth/token"),
            ("/.well-known/openid-configuration", "/.well-known/openid-configuration"),
        ]:
            answer = requests.options(
                proxy.url + path,
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
                timeout=10,
            )
            assert answer.status_code == 204, path
            assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert seen[-1] == f"OPTIONS {reached}"
        assert proxy.ledger.events == ()


def test_pass_through_paths_are_forwarded_as_written(clock: ManualClock) -> None:
    seen: list[str] = []

    async def discovery(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {
                "issuer": base,
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
                "authorization_endpoint": f"{base}/authorize",
            }
        )

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_route("*", "/{tail:.*}", anything)
    with served(app) as url, ChaosProxy(url, clock=clock).in_thread() as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        for written in ("/authorize%2Fx", "/login%2F..%2Fadmin", "/a/b%20c?q=%26x&r=%2F"):
            seen.clear()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    f"GET {written} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
            assert seen == [written]


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&scope=read&scope=admin",
        b"grant_type=client_credentials&grant_type=refresh_token&scope=read",
    ],
)
def test_a_repeated_parameter_is_refused_as_the_idp_refuses_it(
    front: Front, idp: EmbeddedIdP, body: bytes
) -> None:
    """RFC 6749 §3.1: which of two values would the upstream take? The proxy reads a request
    by the IdP's own rule, so its ledger cannot record a grant the IdP issued otherwise."""
    proxy, _ = front()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [
        requests.post(
            f"{base}/token", data=body, headers=form, auth=("svc", "svc-secret"), timeout=10
        )
        for base in (proxy.url, idp.url)
    ]
    through, direct = (answer.json() for answer in answers)
    assert [answer.status_code for answer in answers] == [400, 400]
    assert through == direct
    assert through["error"] == "invalid_request"
    assert "given more than once" in through["error_description"]
    assert proxy.ledger.events == ()


def test_an_empty_field_is_read_as_the_idp_reads_it(front: Front) -> None:
    """``a=1&&b=2`` is two fields to the IdP (the URL Standard's parsing); the proxy once read
    it as no form at all and recorded a client-credentials grant under a subject."""
    proxy, _ = front()
    answer = requests.post(
        f"{proxy.url}/token",
        data=b"grant_type=client_credentials&&scope=read",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("svc", "svc-secret"),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    (granted,) = proxy.ledger.events
    assert str(granted.principal) == "client:svc"  # type: ignore[union-attr]
    assert granted.scopes == frozenset({"read"})  # type: ignore[union-attr]
