"""The broker against the embedded IdP and through the proxy: grants, caps, refresh, revocation
(also on exceptions), failing closed, and the post-test audit of what tests did with them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import requests

from jitchaos import (
    AuditError,
    Broker,
    BrokerError,
    Credential,
    InvalidArgument,
    ManualClock,
    Policy,
    audit_grants,
    read_audit,
)
from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig, UserConfig
from jitchaos.proxy import ChaosProxy
from tests.common.idp import introspect
from tests.common.service import ResourceService

JIT = ClientConfig("jit", "jit-secret", {"openid", "read", "write"})
API = ClientConfig("api", "api-secret", set())
CONFIG = IdPConfig(clients=[JIT, API], users=[UserConfig("alice", {"read", "write"})])


@pytest.fixture
def embedded(clock: ManualClock) -> Iterator[EmbeddedIdP]:
    with EmbeddedIdP(CONFIG, clock=clock).in_thread() as idp:
        yield idp


def broker(source: object, **settings: object) -> Broker:
    return Broker(source, client_id="jit", client_secret="jit-secret", **settings)  # type: ignore[arg-type]


def test_grant_client_and_user_credentials(embedded: EmbeddedIdP, clock: ManualClock) -> None:
    jit = broker(embedded, holder="test_a")
    service = jit.grant("client:jit", {"read"}, ttl=60)
    assert service.scopes == {"read"}
    assert service.expires_at == clock.now() + 60
    assert introspect(embedded, service.access_token)["exp"] == int(clock.now()) + 60
    user = jit.grant("subject:alice", {"read", "write"}, ttl=120)
    assert user.refresh_token is not None
    assert introspect(embedded, user.access_token)["sub"] == "alice"
    assert user.access_token not in repr(user)
    assert user.fingerprint in repr(user)
    leases = jit.ledger.leases
    assert {lease.holder for lease in leases.values()} == {"test_a"}
    assert jit.revoke_all() == 2
    assert introspect(embedded, user.access_token) == {"active": False}
    assert introspect(embedded, service.access_token) == {"active": False}
    assert audit_grants(jit.ledger, at=clock.now()).ok


def test_ttl_cap_is_applied_and_recorded(embedded: EmbeddedIdP, clock: ManualClock) -> None:
    jit = broker(embedded, max_ttl=30)
    credential = jit.grant("subject:alice", {"read"}, ttl=600)
    assert credential.expires_at == clock.now() + 30
    (lease,) = jit.ledger.leases.values()
    assert (lease.requested_ttl, lease.ttl, lease.max_ttl) == (600, 30, 30)
    clock.advance(20)
    renewed = jit.refresh(credential)
    assert renewed.expires_at == lease.at + 30  # renewals stay inside the cap
    clock.advance(10)
    with pytest.raises(InvalidArgument, match="reached its lease cap of 30s"):
        jit.refresh(renewed)
    jit.revoke_all()
    assert audit_grants(jit.ledger, at=clock.now()).ok


def test_context_manager_revokes_on_exceptions(embedded: EmbeddedIdP) -> None:
    held: list[object] = []

    def body() -> None:
        with broker(embedded) as jit:
            held.append(jit)
            held.append(jit.grant("client:jit", {"read"}, ttl=60))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        body()
    jit, credential = held
    assert isinstance(jit, Broker)
    assert isinstance(credential, Credential)
    assert introspect(embedded, credential.access_token) == {"active": False}
    assert jit.held == ()


def test_no_audit_no_grant(embedded: EmbeddedIdP) -> None:
    jit = broker(embedded, audit="/dev/full")
    with pytest.raises(AuditError):
        jit.grant("client:jit", {"read"}, ttl=60)
    assert jit.held == ()
    assert jit.ledger.events == ()
    # The token the IdP issued was revoked again: nothing usable is left behind.
    assert [type(e).__name__ for e in embedded.ledger.events] == ["Granted", "Revoked"]


def test_bad_requests_are_named(embedded: EmbeddedIdP) -> None:
    jit = broker(embedded)
    with pytest.raises(InvalidArgument, match="ttl=0"):
        jit.grant("client:jit", {"read"}, ttl=0)
    with pytest.raises(InvalidArgument, match="no client of this broker"):
        jit.grant("client:svc", {"read"}, ttl=60)
    with pytest.raises(InvalidArgument, match="scopes='read'"):
        jit.grant("client:jit", "read", ttl=60)
    with pytest.raises(InvalidArgument, match="principal="):
        jit.grant("alice", {"read"}, ttl=60)
    with pytest.raises(BrokerError, match=r"invalid_scope|not allowed"):
        jit.grant("client:jit", {"admin"}, ttl=60)
    with pytest.raises(InvalidArgument, match="source="):
        Broker("nowhere", client_id="jit", client_secret="x")
    assert jit.ledger.events == ()


def test_real_idp_by_url_grants_the_client_only(embedded: EmbeddedIdP) -> None:
    jit = Broker(embedded.url, client_id="jit", client_secret="jit-secret")
    with jit:
        assert jit.grant("client:jit", {"read"}, ttl=60).scopes == {"read"}
        with pytest.raises(InvalidArgument, match="user grants need the embedded IdP"):
            jit.grant("subject:alice", {"read"}, ttl=60)


# The post-test audit over uses recorded by the proxy's service side.


@pytest.fixture
def fronted(clock: ManualClock, tmp_path: Path) -> Iterator[tuple[ChaosProxy, Path]]:
    log = tmp_path / "proxy-audit.jsonl"
    with (
        ResourceService("jwt").in_thread() as service,
        ChaosProxy(
            CONFIG, services={"api": service.url}, clock=clock, audit=log
        ).in_thread() as proxy,
    ):
        service.point_at(proxy.url, issuer=proxy.url)
        yield proxy, log


def use(proxy: ChaosProxy, headers: dict[str, str], path: str = "/read") -> int:
    return requests.get(proxy.service_url("api") + path, headers=headers, timeout=10).status_code


def test_leak_and_foreign_use_are_reported(
    fronted: tuple[ChaosProxy, Path], clock: ManualClock
) -> None:
    proxy, _ = fronted
    jit = broker(proxy, holder="test_a")
    proxy.holder = "test_a"
    credential = jit.grant("client:jit", {"read"}, ttl=60)
    assert use(proxy, credential.headers) == 200
    proxy.holder = "test_b"  # another test gets hold of it
    assert use(proxy, credential.headers) == 200
    report = audit_grants(jit.ledger, proxy.history.decisions, at=clock.now(), holder="test_a")
    kinds = sorted(f.kind for f in report.findings)
    assert kinds == ["credential-shared", "open-grant"]
    text = report.format()
    assert "granted to test_a was used by test_b" in text
    assert credential.access_token not in text
    # Fixed: returned in time, used only by its holder.
    jit.revoke(credential)
    fixed = audit_grants(jit.ledger, [], at=clock.now(), holder="test_a")
    assert fixed.ok, fixed.format()


def test_use_after_expiry_and_after_revocation_are_reported(
    fronted: tuple[ChaosProxy, Path], clock: ManualClock
) -> None:
    proxy, log = fronted
    jit = broker(proxy, holder="t", audit=log.with_name("broker.jsonl"))
    proxy.holder = "t"
    with clock.freeze():
        late = jit.grant("client:jit", {"read"}, ttl=10)
        revoked = jit.grant("client:jit", {"read", "write"}, ttl=600)
        jit.revoke(revoked)
        clock.advance(30)
        # The JWT-validating service has no revocation check: it accepts the revoked token.
        assert use(proxy, revoked.headers) == 200
        # A token past the broker's lease (the service's clock is frozen with ours).
        assert use(proxy, late.headers) == 401
    report = audit_grants(
        jit.ledger, proxy.history.decisions, at=clock.now(), policy=Policy(staleness=5)
    )
    (finding,) = [f for f in report.findings if f.kind == "use-after-window"]
    assert finding.decision is not None
    assert finding.decision.fingerprint == revoked.fingerprint
    assert "revoked" in finding.sentence


def test_use_outside_scope_is_reported(
    fronted: tuple[ChaosProxy, Path], clock: ManualClock
) -> None:
    proxy, _ = fronted
    with broker(proxy, holder="t") as jit:
        proxy.holder = "t"
        credential = jit.grant("client:jit", {"read"}, ttl=60)
        answer = requests.post(
            proxy.service_url("api") + "/write", headers=credential.headers, timeout=10
        )
        assert answer.status_code == 403  # the service refuses: fine
        clock.advance(1)  # returned a second later
    decisions = list(proxy.history.decisions)

    # A service that let the write through (as a buggy one would):
    lenient = attrs.evolve(decisions[-1], seq=99, status=200)
    report = audit_grants(
        jit.ledger,
        [*decisions, lenient],
        at=clock.now(),
        required_scopes={"POST /write": {"write"}, "/read": {"read"}},
    )
    assert [f.kind for f in report.findings] == ["use-outside-scope"], report.format()


def test_proxy_log_holds_decisions_for_jitchaos_audit(fronted: tuple[ChaosProxy, Path]) -> None:
    proxy, log = fronted
    token = requests.post(
        f"{proxy.url}/token",
        data={"grant_type": "client_credentials", "scope": "read"},
        auth=("jit", "jit-secret"),
        timeout=10,
    ).json()["access_token"]
    use(proxy, {"Authorization": f"Bearer {token}"})
    report = read_audit(log)
    assert report.malformed == ()
    assert [d.status for d in report.decisions] == [200]
    assert token not in log.read_text()


def test_renewal_beyond_the_cap_is_reported() -> None:
    from jitchaos import GrantRequest, IssuedToken, Ledger, Principal, TokenKind

    clock = ManualClock(start=1000)
    ledger = Ledger(clock)
    granted = GrantRequest(
        principal=Principal.client("jit"),
        client_id="jit",
        scopes={"read"},
        lifetime=30,
        refresh=True,
    ).record(ledger)
    ledger.lease(granted.grant_id, holder="t", requested_ttl=30, ttl=30, max_ttl=60)
    clock.advance(25)
    spent = granted.tokens[1].fingerprint
    ledger.refresh(
        spent,
        tokens=[
            IssuedToken(
                fingerprint="f" * 16,
                kind=TokenKind.ACCESS,
                issued_at=1025,
                expires_at=1125,
                scopes={"read"},
            )
        ],
    )
    ledger.revoke(grant=granted.grant_id)
    report = audit_grants(ledger, at=clock.now(), holder="t")
    (finding,) = report.findings
    assert finding.kind == "renewal-beyond-cap"
    assert (
        "beyond its lease cap of 60s from 1970-01-01T00:16:40.000Z (t+0.0 s)" in finding.sentence
    )


def test_use_after_expiry_by_a_lenient_service_is_reported(
    clock: ManualClock, tmp_path: Path
) -> None:
    with (
        ResourceService("jwt", leeway=3600).in_thread() as lenient,
        ChaosProxy(CONFIG, services={"api": lenient.url}, clock=clock).in_thread() as proxy,
    ):
        lenient.point_at(proxy.url, issuer=proxy.url)
        jit = broker(proxy, holder="t")
        proxy.holder = "t"
        with clock.freeze():
            credential = jit.grant("client:jit", {"read"}, ttl=10)
            clock.advance(60)
            # An hour of leeway: the service accepts a token that expired 50 s ago.
            assert use(proxy, credential.headers) == 200
            jit.revoke(credential)
        report = audit_grants(
            jit.ledger, proxy.history.decisions, at=clock.now(), policy=Policy(leeway=5)
        )
    (finding,) = report.findings
    assert finding.kind == "use-after-window"
    assert "expired at" in finding.sentence


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"audit": 5}, "audit=5 must have write(event)"),
        ({"clock": "x"}, "clock='x' must have now()"),
        ({"timeout": -1}, "timeout=-1 must be a finite number >= 0"),
        ({"timeout": 0}, "timeout=0 must be seconds > 0"),
        ({"timeout": float("nan")}, "timeout=nan"),
        ({"max_ttl": float("nan")}, "max_ttl=nan must be finite seconds > 0, or None"),
        ({"max_ttl": float("inf")}, "max_ttl=inf must be finite seconds > 0, or None"),
    ],
)
def test_a_broker_set_up_wrong_is_refused_before_it_grants(
    embedded: EmbeddedIdP, settings: dict[str, object], names: str
) -> None:
    """Before, a bad audit sink or clock was taken, and grant() then crashed between the IdP
    issuing a credential and the broker recording it: a credential nobody would revoke."""
    with pytest.raises(InvalidArgument) as caught:
        broker(embedded, **settings)
    assert names in str(caught.value)
    assert embedded.ledger.grants == ()


@pytest.mark.parametrize(
    ("scopes", "ttl", "names"),
    [
        (None, 60, "scopes=None must be a collection of scope names"),
        ([1], 60, "scopes=['1'] must hold scope names (str)"),
        ({"read"}, float("nan"), "ttl=nan must be finite seconds > 0"),
        ({"read"}, float("inf"), "ttl=inf must be finite seconds > 0"),
    ],
)
def test_bad_grants_are_refused_before_the_idp_is_asked(
    embedded: EmbeddedIdP, scopes: object, ttl: float, names: str
) -> None:
    jit = broker(embedded)
    with pytest.raises(InvalidArgument) as caught:
        jit.grant("client:jit", scopes, ttl)  # type: ignore[arg-type]
    assert names in str(caught.value)
    assert embedded.ledger.grants == ()
    with pytest.raises(InvalidArgument, match="credential=None must be a Credential"):
        jit.revoke(None)  # type: ignore[arg-type]


def test_scopes_may_come_from_any_iterable(embedded: EmbeddedIdP) -> None:
    jit = broker(embedded)
    credential = jit.grant("client:jit", (scope for scope in ["read"]), ttl=60)
    assert credential.scopes == {"read"}
    jit.revoke_all()


def test_no_token_or_secret_in_a_traceback_with_locals(embedded: EmbeddedIdP) -> None:
    import traceback

    jit = broker(embedded)
    credential = jit.grant("subject:alice", {"read"}, ttl=60)
    assert credential.refresh_token is not None
    assert credential.access_token not in repr(credential.headers)
    jit._endpoints = {"token": "http://127.0.0.1:9/token"}  # the IdP is gone
    with pytest.raises(BrokerError, match="unreachable") as raised:
        jit.refresh(credential)
    # What pytest -l shows: every frame's locals, through repr.
    shown = "".join(
        traceback.TracebackException.from_exception(raised.value, capture_locals=True).format()
    )
    assert "_send" in shown  # the frame that holds the request is in it...
    import base64

    basic = base64.b64encode(b"jit:jit-secret").decode()
    for secret in (credential.refresh_token, credential.access_token, "jit-secret", basic):
        assert secret not in shown  # ... but shows none of it


def test_an_answer_that_cannot_be_recorded_is_given_back(embedded: EmbeddedIdP) -> None:
    jit = broker(embedded)
    jit._endpoints = None

    def expired_at_once(form: dict[str, str], *, client: str) -> dict[str, object]:
        return {"access_token": "opaque-token-value", "token_type": "Bearer", "expires_in": 0}

    jit._token = expired_at_once  # type: ignore[method-assign]
    with pytest.raises(BrokerError, match="expires_in=0"):
        jit.grant("client:jit", {"read"}, ttl=60)
    assert jit.held == ()
    assert jit.ledger.grants == ()
