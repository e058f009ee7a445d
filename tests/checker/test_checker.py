"""The checker judges real decisions recorded by the proxy against the ledger: each violation
kind from a service that really makes that mistake, and nothing inside the policy's windows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import attrs
import pytest
import requests

from jitchaos import (
    ChaosProxy,
    Decision,
    Forged,
    InvalidArgument,
    Ledger,
    ManualClock,
    Policy,
    Revoked,
    audit_grants,
    check,
)
from jitchaos.faults import Narrow, Revoke, RotateKeys
from jitchaos.idp import EmbeddedIdP
from tests.common.idp import client_credentials, refresh, user_tokens
from tests.common.service import ResourceService

NEEDS = {"GET /read": {"read"}, "POST /write": {"write"}}
Start = Callable[..., ChaosProxy]


@pytest.fixture
def start(idp: EmbeddedIdP) -> Iterator[Start]:
    with ExitStack() as stack:

        def run(mode: str = "jwt", **settings: float) -> ChaosProxy:
            service = stack.enter_context(ResourceService(mode, **settings).in_thread())  # type: ignore[arg-type]
            proxy = stack.enter_context(ChaosProxy(idp, services={"api": service.url}).in_thread())
            service.point_at(proxy.url, issuer=idp.issuer)
            return proxy

        yield run


def call(proxy: ChaosProxy, token: str, route: str = "GET /read") -> int:
    method, path = route.split()
    return requests.request(
        method,
        proxy.service_url("api") + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).status_code


def kinds(proxy: ChaosProxy, policy: Policy | None = None, **extra: Any) -> list[str]:
    found = check(
        proxy.ledger, proxy.history.decisions, policy=policy, required_scopes=NEEDS, **extra
    )
    return [v.kind for v in found]


def test_revoked_token_accepted_beyond_staleness_only(start: Start, clock: ManualClock) -> None:
    proxy = start("jwt")
    token = client_credentials(proxy, "read")["access_token"]
    proxy.apply(Revoke(target="grant:g1"))
    clock.advance(10)
    assert call(proxy, token) == 200  # trusts the JWT until exp
    assert kinds(proxy, Policy(staleness=30)) == []  # allowed: a 30 s cache
    assert kinds(proxy, Policy(staleness=5)) == ["revoked-token-accepted"]
    (violation,) = check(proxy.ledger, proxy.history.decisions, policy=Policy(staleness=5))
    text = violation.format()
    assert "GET /read" in text
    assert "revoked" in text
    assert token not in text
    # Readable instants: ISO 8601 UTC with the offset from the run's start, never %g.
    assert re.search(r"GET /read at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(t\+10\.0 s\)", text)
    assert re.search(r"revoked at \S+Z \(t\+0\.0 s\)", text), text
    assert "e+09" not in text
    assert "t=1" not in text


def test_introspecting_service_has_no_violation(start: Start, clock: ManualClock) -> None:
    proxy = start("introspect")
    token = client_credentials(proxy, "read write")["access_token"]
    assert call(proxy, token, "POST /write") == 200
    proxy.apply(Narrow(scopes=frozenset({"read"}), target="grant:g1"))
    assert call(proxy, token, "POST /write") == 403
    assert call(proxy, token) == 200
    proxy.apply(Revoke(target="grant:g1"))
    assert call(proxy, token) == 401
    assert kinds(proxy) == []


def test_narrowed_scope_honoured(start: Start, clock: ManualClock) -> None:
    proxy = start("jwt")
    token = client_credentials(proxy, "read write")["access_token"]
    proxy.apply(Narrow(scopes=frozenset({"read"}), target="grant:g1"))
    clock.advance(60)
    assert call(proxy, token, "POST /write") == 200  # the JWT still says write
    assert call(proxy, token) == 200  # read is still granted: fine
    assert kinds(proxy, Policy(staleness=30)) == ["narrowed-scope-honoured"]


def test_expired_token_accepted(start: Start, clock: ManualClock) -> None:
    proxy = start("jwt", leeway=3600)
    token = client_credentials(proxy, "read", ttl="60")["access_token"]
    with clock.freeze():
        clock.advance(120)
        assert call(proxy, token) == 200
    assert kinds(proxy, Policy(leeway=30)) == ["expired-token-accepted"]
    assert kinds(proxy, Policy(leeway=120)) == []


def test_valid_token_rejected_after_rotation_without_refetch(
    start: Start, clock: ManualClock
) -> None:
    proxy = start("jwt", jwks_cooldown=30)  # PyJWKClient's default: no refetch for 30 s
    first = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, first) == 200
    proxy.apply(RotateKeys(mode="add"))
    fresh = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, fresh) == 401
    assert kinds(proxy) == ["valid-token-rejected"]


def test_hostile_and_unknown_tokens(start: Start) -> None:
    proxy = start("jwt")
    token = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, token) == 200
    (decision,) = proxy.history.decisions
    # What other services would have answered to other tokens at the same moment:
    forged = attrs.evolve(decision, seq=9, fingerprint="0123456789abcdef")
    refused = attrs.evolve(decision, seq=10, fingerprint="fedcba9876543210", status=401)
    outage = attrs.evolve(decision, seq=11, status=503)
    found = check(
        proxy.ledger, [decision, forged, refused, outage], hostile={decision.fingerprint or ""}
    )
    assert [v.kind for v in found] == ["hostile-token-accepted", "hostile-token-accepted"]
    assert "a forged token" in found[0].sentence
    assert "never issued" in found[1].sentence


def test_a_hostile_token_is_judged_by_who_could_have_made_it(start: Start) -> None:
    """A forgery anyone can make; a real token of another kind its holder can present; a
    profile deviation only the IdP could sign, judged only under the strict profile (issue
    #18: a correct PyJWT service was reported for a token signed by the IdP with typ JWT)."""
    proxy = start("jwt")
    token = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, token) == 200
    (decision,) = proxy.history.decisions
    fps = ["a" * 16, "b" * 16, "c" * 16]
    accepted = [attrs.evolve(decision, seq=9 + n, fingerprint=fp) for n, fp in enumerate(fps)]
    hostile = {
        fps[0]: Forged("alg-none", "alg='none'", "forgery"),
        fps[1]: Forged("token-type-confusion", "ID token", "confusion"),
        fps[2]: Forged("header-oddity", "typ JWT", "profile"),
    }
    found = check(proxy.ledger, accepted, hostile=hostile)
    assert [(v.kind, v.attack) for v in found] == [
        ("hostile-token-accepted", "alg-none"),
        ("confused-token-accepted", "token-type-confusion"),
    ]
    assert "made without the IdP's keys (alg-none: alg='none'; aaaa" in found[0].sentence
    assert "of another kind" in found[1].sentence
    assert found[0].distinct == "hostile-token-accepted: alg-none"
    strict = check(proxy.ledger, accepted, hostile=hostile, policy=Policy(strict_profile=True))
    assert [v.kind for v in strict][-1] == "profile-deviation-accepted"
    assert "deviates from the RFC 9068 profile (header-oddity: typ JWT" in strict[-1].sentence
    # Refused, none of them is anything.
    refused = [attrs.evolve(d, status=401) for d in accepted]
    assert check(proxy.ledger, refused, hostile=hostile, policy=Policy(strict_profile=True)) == ()
    with pytest.raises(InvalidArgument, match=r"hostile\['x'\]='forgery' must be a Forged"):
        check(proxy.ledger, accepted, hostile={"x": "forgery"})
    with pytest.raises(InvalidArgument, match="finding='guess' must be one of forgery"):
        Forged("alg-none", finding="guess")
    with pytest.raises(InvalidArgument, match="strict_profile='yes' must be True or False"):
        Policy(strict_profile="yes")  # type: ignore[arg-type]


def test_scope_not_enforced(start: Start) -> None:
    proxy = start("jwt")
    token = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, token, "POST /write") == 403
    (decision,) = proxy.history.decisions
    lenient = attrs.evolve(decision, seq=2, status=200)  # a service that let it through
    assert [v.kind for v in check(proxy.ledger, [lenient], required_scopes=NEEDS)] == [
        "scope-not-enforced"
    ]


def test_cross_principal_leak(start: Start) -> None:
    proxy = start("introspect")
    alice = user_tokens(proxy, "alice", "read write")["access_token"]
    bob = user_tokens(proxy, "bob", "read")["access_token"]
    assert call(proxy, alice, "POST /write") == 200
    assert call(proxy, bob, "POST /write") == 403  # a correct service
    assert kinds(proxy) == []
    served, refused = proxy.history.decisions
    leaked = attrs.evolve(refused, seq=3, status=200)  # a service that used alice's entry
    (violation,) = check(proxy.ledger, [served, leaked], required_scopes=NEEDS)
    assert violation.kind == "cross-principal-leak"
    assert "subject:bob" in violation.sentence
    assert "subject:alice" in violation.sentence
    # Without alice's earlier use, bob's write is only a scope the service did not enforce.
    (alone,) = check(proxy.ledger, [leaked], required_scopes=NEEDS)
    assert alone.kind == "scope-not-enforced"


def test_a_subjects_old_wider_permission_is_no_leak(start: Start) -> None:
    """A role change as real IdPs make it: alice's next token carries fewer scopes. A service
    keyed by subject that still allows her the old ones honours a narrowing late; it leaks
    nothing from bob, who also held the scope (issue #17: it was named as the source)."""
    proxy = start("introspect")
    bob = user_tokens(proxy, "bob", "read")["access_token"]
    wide = user_tokens(proxy, "alice", "read write")["access_token"]
    assert call(proxy, wide, "POST /write") == 200
    other = client_credentials(proxy, "read write")["access_token"]
    assert call(proxy, other, "POST /write") == 200  # another principal held it last
    narrow = user_tokens(proxy, "alice", "read")["access_token"]
    assert call(proxy, narrow, "POST /write") == 403  # a correct service
    assert call(proxy, bob, "GET /read") == 200
    decisions = list(proxy.history.decisions)
    decisions[2] = attrs.evolve(decisions[2], status=200)  # a service keyed by subject
    found = check(proxy.ledger, decisions, required_scopes=NEEDS)
    (violation,) = found
    assert violation.kind == "narrowed-scope-honoured"
    assert "subject:alice" in violation.sentence
    assert str(decisions[0].fingerprint) in violation.sentence  # her earlier, wider token
    assert "subject:bob" not in violation.sentence
    assert "client:" not in violation.sentence
    # Without her earlier token, the wider permission came from another principal.
    (leak,) = check(proxy.ledger, decisions[1:], required_scopes=NEEDS)
    assert leak.kind == "cross-principal-leak"


def test_a_wider_token_the_service_only_refused_a_route_still_taught_it_the_scopes(
    start: Start,
) -> None:
    """A permission cache learns a subject's scopes from any token it authenticates, a 403
    for a missing scope included: alice's wider token, refused on one route, still held
    write; her narrower token later allowed to write honours it (a role change), not a
    scope the service merely failed to enforce (found with jose behind node-oidc-provider)."""
    proxy = start("introspect")
    wide = user_tokens(proxy, "alice", "write")["access_token"]
    assert call(proxy, wide, "GET /read") == 403  # authenticated, and its scopes read
    narrow = user_tokens(proxy, "alice", "read")["access_token"]
    assert call(proxy, narrow, "POST /write") == 403  # a correct service
    refused, lenient = proxy.history.decisions
    found = check(
        proxy.ledger, [refused, attrs.evolve(lenient, status=200)], required_scopes=NEEDS
    )
    assert [v.kind for v in found] == ["narrowed-scope-honoured"]
    # A token the service refused as invalid (401) taught it nothing.
    unread = attrs.evolve(refused, status=401)
    found = check(proxy.ledger, [unread, attrs.evolve(lenient, status=200)], required_scopes=NEEDS)
    assert [v.kind for v in found] == ["scope-not-enforced"]


def test_no_recovery_after_revoke_for_clients_under_test(start: Start, clock: ManualClock) -> None:
    proxy = start("introspect")
    token = client_credentials(proxy, "read")["access_token"]
    proxy.apply(Revoke(target="grant:g1"))
    assert call(proxy, token) == 401
    clock.advance(0.5)
    assert call(proxy, token) == 401  # presented again within the recovery window
    assert kinds(proxy, clients={"svc"}) == []
    clock.advance(1)
    assert call(proxy, token) == 401  # and again, 1.5 s after it was refused
    assert kinds(proxy, clients={"svc"}) == ["no-recovery-after-revoke"]
    assert kinds(proxy, Policy(recovery=2), clients={"svc"}) == []
    assert kinds(proxy) == []  # a test's own deliberate reuse is not a client's mistake
    (violation,) = check(proxy.ledger, proxy.history.decisions, clients={"svc"})
    assert violation.decision == proxy.history.decisions[-1]
    assert token not in violation.format()


def test_refresh_storm_is_reuse_of_one_refresh_token(start: Start) -> None:
    proxy = start("introspect")
    tokens = user_tokens(proxy, "alice", "read")
    assert refresh(proxy, tokens["refresh_token"]).status_code == 200
    assert kinds(proxy, clients={"web"}) == []  # one refresh per refresh token
    again = refresh(proxy, tokens["refresh_token"])  # a second request refreshing, too late
    assert again.status_code == 400
    (event,) = [e for e in proxy.ledger.events if isinstance(e, Revoked)]
    assert "reused" in event.reason  # the proxy's ledger follows the IdP's reuse detection
    assert kinds(proxy, clients={"web"}) == ["refresh-storm"]
    assert kinds(proxy, Policy(max_refreshes=2), clients={"web"}) == []
    assert kinds(proxy, clients={"svc"}) == []
    (violation,) = check(proxy.ledger, (), clients={"web"})
    assert violation.decision is None
    assert "reuse detection revoked" in violation.format()
    assert tokens["refresh_token"] not in violation.format()


def _decision() -> Decision:
    return Decision(
        seq=1, at=1.0, step=0, service="api", method="GET", path="/x", fingerprint=None, status=200
    )


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        # A str of scopes was split into letters: 'read' required {r, e, a, d}, a false alarm.
        ({"required_scopes": {"GET /x": "read"}}, "required_scopes['GET /x']='read' must be"),
        ({"required_scopes": ["read"]}, "required_scopes=['read'] must map"),
        ({"hostile": "aaaa"}, "hostile='aaaa' must be a collection of fingerprints"),
        ({"clients": None}, "clients=None must be a collection"),
        ({"since": "x"}, "since='x' must be a ledger position"),
        ({"decisions": None}, "decisions=None must be an iterable of Decision"),
        ({"decisions": ["x"]}, "decisions holds 'x', not a Decision"),
    ],
)
def test_check_and_audit_name_bad_arguments(settings: dict[str, Any], names: str) -> None:
    arguments: dict[str, Any] = {"decisions": [_decision()], **settings}
    decisions = arguments.pop("decisions")
    with pytest.raises(InvalidArgument) as caught:
        check(Ledger(), decisions, **arguments)
    assert names in str(caught.value)
    audit_arguments = {k: v for k, v in arguments.items() if k in ("required_scopes", "decisions")}
    if audit_arguments or "decisions" in settings:
        with pytest.raises(InvalidArgument) as caught:
            audit_grants(Ledger(), decisions, at=2.0, **audit_arguments)
        assert names in str(caught.value)


def test_audit_at_must_be_a_time() -> None:
    for bad in (None, float("nan"), "x"):
        with pytest.raises(InvalidArgument, match=r"at=.* must be a finite number"):
            audit_grants(Ledger(), [], at=bad)  # type: ignore[arg-type]


def test_a_new_key_refused_within_key_staleness_is_indeterminate(
    start: Start, clock: ManualClock
) -> None:
    # PyJWKClient's cooldown: an unknown kid is refetched at most every 300 s (real time).
    proxy = start("jwt", jwks_cooldown=300)
    assert call(proxy, client_credentials(proxy, "read")["access_token"]) == 200
    proxy.apply(RotateKeys(mode="add"))
    token = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, token) == 401
    assert kinds(proxy, Policy(key_staleness=60)) == []
    assert kinds(proxy, Policy(key_staleness=0)) == ["valid-token-rejected"]
    clock.advance(61)  # past the window: the service should have the key by now
    assert call(proxy, token) == 401
    assert kinds(proxy, Policy(key_staleness=60)) == ["valid-token-rejected"]


def test_a_key_published_ahead_is_never_met_unknown(start: Start, clock: ManualClock) -> None:
    proxy = start("jwt", jwks_cooldown=300)
    assert call(proxy, client_credentials(proxy, "read")["access_token"]) == 200
    proxy.apply(RotateKeys(mode="publish-ahead", ahead=60))
    clock.advance(60)
    token = client_credentials(proxy, "read")["access_token"]
    # The service fetched its key set before the key was published and its cooldown holds:
    # refused. Judged by when the key was published, 60 s ago: no excuse under 60 s.
    assert call(proxy, token) == 401
    assert kinds(proxy, Policy(key_staleness=61)) == []
    assert kinds(proxy, Policy(key_staleness=60)) == ["valid-token-rejected"]


def test_a_removed_key_accepted_beyond_key_staleness(start: Start, clock: ManualClock) -> None:
    proxy = start("jwt")  # PyJWKClient keeps its key set 300 s (real time)
    token = client_credentials(proxy, "read")["access_token"]
    assert call(proxy, token) == 200
    proxy.apply(RotateKeys(mode="remove-old"))
    assert call(proxy, token) == 200  # the cached key set still has the removed key
    assert kinds(proxy, Policy(key_staleness=60)) == []
    clock.advance(61)
    assert call(proxy, token) == 200
    (violation,) = check(proxy.ledger, proxy.history.decisions, policy=Policy(key_staleness=60))
    assert violation.kind == "removed-key-accepted"
    assert "withdrawn from the JWKS" in violation.sentence
    assert "60s key staleness" in violation.sentence
    assert any(type(event).__name__ == "KeyWithdrawn" for event in violation.evidence)
    # A service may also learn of a dead token from the IdP (introspection), within its
    # staleness: the longer of the two windows excuses it.
    assert kinds(proxy, Policy(staleness=3600, key_staleness=60)) == []
