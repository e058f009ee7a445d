"""Each fault kind changes what a real service sees through the proxy, and the history
records both the fault and every decision."""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
import pytest
import requests

from jitchaos import (
    ChaosProxy,
    Decision,
    InvalidArgument,
    KeyPublished,
    KeyWithdrawn,
    ManualClock,
    fingerprint,
)
from jitchaos.faults import (
    ClockSkew,
    Expire,
    HoldRefresh,
    Latency,
    Narrow,
    Outage,
    Revoke,
    RotateKeys,
)
from jitchaos.idp import EmbeddedIdP
from tests.common.idp import client_credentials, introspect, refresh, standard_config, user_tokens
from tests.proxy.conftest import Front


def use(proxy: ChaosProxy, token: str, path: str = "/read") -> int:
    method = "POST" if path == "/write" else "GET"
    response = requests.request(
        method,
        proxy.service_url("api") + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return response.status_code


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def last_fault(proxy: ChaosProxy) -> str:
    return proxy.history.faults[-1].detail


# expire


def test_expire_live_token_introspection_inactive_and_refresh_refused(front: Front) -> None:
    proxy, _ = front("introspect")
    tokens = user_tokens(proxy)
    assert use(proxy, tokens["access_token"]) == 200
    applied = proxy.apply(Expire(target="grant:g1"))
    assert applied.applied, applied.detail
    assert use(proxy, tokens["access_token"]) == 401
    assert introspect(proxy, tokens["access_token"]) == {"active": False}
    answer = refresh(proxy, tokens["refresh_token"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    statuses = [d.status for d in proxy.history.decisions]
    assert statuses == [200, 401]


def test_expire_issued_ttl_shortens_exp_and_expires_in(front: Front, clock: ManualClock) -> None:
    proxy, _ = front("introspect")
    proxy.apply(Expire(issued_ttl=5))
    token = client_credentials(proxy, "read")
    assert token["expires_in"] == 5
    body = claims(token["access_token"])
    assert body["exp"] - body["iat"] == 5
    assert use(proxy, token["access_token"]) == 200
    clock.advance(5)
    assert use(proxy, token["access_token"]) == 401  # the IdP never knew; the proxy did
    # Only the next token was shortened.
    assert client_credentials(proxy, "read")["expires_in"] == 300


def test_expire_issued_ttl_token_is_properly_signed(front: Front, clock: ManualClock) -> None:
    proxy, _ = front("jwt")
    proxy.apply(Expire(issued_ttl=5))
    token = client_credentials(proxy, "read")["access_token"]
    with clock.freeze():
        assert use(proxy, token) == 200
        clock.advance(6)
        assert use(proxy, token) == 401


# revoke


def test_revoke_grant_introspecting_service_denies(front: Front) -> None:
    proxy, _ = front("introspect")
    token = client_credentials(proxy, "read")["access_token"]
    assert use(proxy, token) == 200
    proxy.apply(Revoke(target="grant:g1"))
    assert "revoked 1 token(s) of g1" in last_fault(proxy)
    assert use(proxy, token) == 401


def test_revoke_jwt_service_keeps_accepting_and_history_shows_it(front: Front) -> None:
    # A service that trusts a JWT until exp: the proxy cannot stop it, but the ground truth
    # (ledger) and the history now disagree, which is what the checker reports.
    proxy, _ = front("jwt")
    token = client_credentials(proxy, "read")["access_token"]
    proxy.apply(Revoke(target=f"token:{fingerprint(token)}"))
    assert use(proxy, token) == 200
    decision = proxy.history.decisions[-1]
    verdict = proxy.ledger.verdict(fingerprint(token), at=decision.at, scopes={"read"})
    assert verdict.outcome.name == "MUST_DENY"


def test_revoke_with_delay_is_honoured_late(front: Front, clock: ManualClock) -> None:
    proxy, _ = front("introspect")
    token = client_credentials(proxy, "read")["access_token"]
    proxy.apply(Revoke(target="principal:client:svc", delay=10))
    assert use(proxy, token) == 200  # acknowledged, not yet honoured
    clock.advance(10)
    assert use(proxy, token) == 401


def test_revoke_refresh_family_refuses_refresh(front: Front) -> None:
    proxy, _ = front("introspect")
    tokens = user_tokens(proxy)
    proxy.apply(Revoke(target=f"token:{fingerprint(tokens['refresh_token'])}"))
    assert refresh(proxy, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert use(proxy, tokens["access_token"]) == 401


# narrow


def test_narrow_grant_at_introspection_and_refresh(front: Front) -> None:
    proxy, _ = front("introspect")
    tokens = user_tokens(proxy)
    assert use(proxy, tokens["access_token"], "/write") == 200
    proxy.apply(Narrow(scopes=frozenset({"read"}), target="grant:g1"))
    assert use(proxy, tokens["access_token"], "/write") == 403
    assert use(proxy, tokens["access_token"], "/read") == 200
    fresh = refresh(proxy, tokens["refresh_token"]).json()
    assert fresh["scope"] == "read"
    assert claims(fresh["access_token"])["scope"] == "read"
    assert use(proxy, fresh["access_token"], "/write") == 403


def test_narrow_at_issue_reminted_token_verifies(front: Front) -> None:
    proxy, _ = front("jwt")
    proxy.apply(Narrow(scopes=frozenset({"read"})))
    token = client_credentials(proxy, "read write")
    assert token["scope"] == "read"
    assert claims(token["access_token"])["scope"] == "read"
    assert use(proxy, token["access_token"], "/read") == 200  # signature still valid
    assert use(proxy, token["access_token"], "/write") == 403
    (grant,) = proxy.ledger.grants
    assert grant.scopes == {"read"}


# rotate_keys


def test_rotate_keys_add_followed_by_pyjwkclient(front: Front) -> None:
    proxy, _ = front("jwt")
    before = client_credentials(proxy, "read")["access_token"]
    assert use(proxy, before) == 200
    proxy.apply(RotateKeys(mode="add"))
    after = client_credentials(proxy, "read")["access_token"]
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    assert use(proxy, after) == 200  # PyJWKClient refetched the JWKS for the new kid
    assert use(proxy, before) == 200  # the old key is still published


def test_rotate_keys_remove_old_withdraws_what_it_signed(front: Front) -> None:
    proxy, _ = front("jwt")
    before = client_credentials(proxy, "read")["access_token"]
    kid = jwt.get_unverified_header(before)["kid"]
    proxy.apply(RotateKeys(mode="remove-old"))
    assert use(proxy, before) == 401
    record = proxy.ledger.lookup(fingerprint(before))
    assert record is not None
    assert record.withdrawn_at is not None
    assert record.revoked_at is None  # the key went, not the grant
    assert introspect(proxy, before) == {"active": False}
    withdrawn = [e for e in proxy.ledger.events if isinstance(e, KeyWithdrawn)]
    assert [(e.kid, e.fingerprints) for e in withdrawn] == [(kid, (fingerprint(before),))]
    assert use(proxy, client_credentials(proxy, "read")["access_token"]) == 200


def test_rotate_keys_publish_ahead_signs_with_the_new_key_later(
    front: Front, clock: ManualClock
) -> None:
    proxy, _ = front("jwt")
    old = jwt.get_unverified_header(client_credentials(proxy, "read")["access_token"])["kid"]
    proxy.apply(RotateKeys(mode="publish-ahead", ahead=60))
    published = [
        key["kid"] for key in requests.get(f"{proxy.url}/jwks", timeout=10).json()["keys"]
    ]
    assert len(published) == 2
    assert old in published
    new = next(kid for kid in published if kid != old)
    clock.advance(59)
    token = client_credentials(proxy, "read")["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == old  # published, not signing yet
    clock.advance(1)
    token = client_credentials(proxy, "read")["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == new
    key = jwt.PyJWKClient(f"{proxy.url}/jwks").get_signing_key_from_jwt(token)
    # The clock moved a minute past the wall clock: check the signature, not the times.
    jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience="jitchaos",
        options={"verify_iat": False, "verify_nbf": False},
    )
    event = next(e for e in proxy.ledger.events if isinstance(e, KeyPublished))
    assert (event.kid, event.signs_from - event.at) == (new, 60)


def test_rotate_keys_rekey_same_kid_new_key(front: Front) -> None:
    proxy, _ = front("jwt")
    before = client_credentials(proxy, "read")["access_token"]
    proxy.apply(RotateKeys(mode="rekey"))
    after = client_credentials(proxy, "read")["access_token"]
    assert jwt.get_unverified_header(after)["kid"] == jwt.get_unverified_header(before)["kid"]
    assert use(proxy, after) == 200
    assert use(proxy, before) == 401


# outage


@pytest.mark.parametrize("mode", ["5xx", "malformed"])
def test_outage_on_token_endpoint(front: Front, clock: ManualClock, mode: str) -> None:
    proxy, _ = front("jwt")
    proxy.apply(Outage(endpoint="token", mode=mode, duration=30))  # type: ignore[arg-type]
    for _ in range(2):
        answer = requests.post(
            f"{proxy.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret"),
            timeout=10,
        )
        if mode == "5xx":
            assert answer.status_code == 503
            assert answer.json()["error"] == "temporarily_unavailable"
        else:
            assert answer.status_code == 200
            with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
                answer.json()
    clock.advance(30)
    assert client_credentials(proxy, "read")["access_token"]


def test_outage_empty_keys_breaks_jwt_service_until_over(front: Front, clock: ManualClock) -> None:
    proxy, _ = front("jwt")
    token = client_credentials(proxy, "read")["access_token"]
    proxy.apply(Outage(endpoint="jwks", mode="empty-keys", duration=10))
    assert use(proxy, token) == 401  # a service without a last-good key cache
    clock.advance(10)
    assert use(proxy, token) == 200


def test_outage_timeout_holds_the_request(front: Front) -> None:
    proxy, _ = front("jwt")
    proxy.apply(Outage(endpoint="introspection", mode="timeout", duration=0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            f"{proxy.url}/introspect",
            data={"token": "x"},
            auth=("api", "api-secret"),
            timeout=0.2,
        )


def test_latency_delays_the_endpoint(front: Front, clock: ManualClock) -> None:
    proxy, _ = front("jwt")
    proxy.apply(Latency(endpoint="token", seconds=0.3, duration=5))
    started = time.monotonic()
    client_credentials(proxy, "read")
    assert time.monotonic() - started >= 0.3
    clock.advance(5)
    client_credentials(proxy, "read")  # over: a test that hung here would time out
    assert "token delayed 0.3s" in proxy.history.faults[0].detail


def test_latency_holds_no_longer_than_the_proxys_hold_limit(
    idp: EmbeddedIdP, clock: ManualClock
) -> None:
    """A fault value from a schedule file may say an hour; a request is held the limit only."""
    with ChaosProxy(idp, hold_limit=0.2).in_thread() as proxy:
        proxy.apply(Latency(endpoint="token", seconds=3600, duration=5))
        started = time.monotonic()
        client_credentials(proxy, "read")
        assert 0.2 <= time.monotonic() - started < 30
        assert "token delayed 3600s (held 0.2s: the proxy's hold limit)" in (
            proxy.history.faults[0].detail
        )


def test_clock_skew_is_at_most_a_year() -> None:
    with pytest.raises(InvalidArgument, match="at most a year either way"):
        ClockSkew(seconds=1e20)
    assert ClockSkew(seconds=-366 * 86400).seconds == -366 * 86400


# clock_skew


def test_clock_skew_nbf_in_the_future(front: Front) -> None:
    proxy, _ = front("jwt")
    proxy.apply(ClockSkew(seconds=60))
    token = client_credentials(proxy, "read")["access_token"]
    body = claims(token)
    assert body["nbf"] == body["iat"] >= time.time() + 55
    assert use(proxy, token) == 401  # "not yet valid" with no leeway


@pytest.mark.parametrize(("leeway", "status"), [(0, 401), (10, 200)])
def test_clock_skew_exp_at_leeway_boundary(front: Front, leeway: int, status: int) -> None:
    proxy, _ = front("jwt", leeway=leeway)
    proxy.apply(ClockSkew(seconds=5, exp_at_leeway=True))
    token = client_credentials(proxy, "read")["access_token"]
    assert claims(token)["exp"] <= time.time() - 4
    assert use(proxy, token) == status


# hold_refresh


def test_hold_refresh_forces_concurrent_refresh_and_reuse_detection(front: Front) -> None:
    proxy, _ = front("introspect")
    tokens = user_tokens(proxy)
    proxy.apply(HoldRefresh(count=2, timeout=10))
    answers: list[requests.Response] = []

    def go() -> None:
        answers.append(refresh(proxy, tokens["refresh_token"]))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [200, 400]
    refused = next(a for a in answers if a.status_code == 400)
    assert "already used" in refused.json()["error_description"]


def test_history_orders_faults_and_decisions(front: Front) -> None:
    proxy, _ = front("introspect")
    token = client_credentials(proxy, "read")["access_token"]
    use(proxy, token)
    proxy.apply(Revoke(target="grant:g1"))
    use(proxy, token)
    kinds = [
        type(e).__name__ if isinstance(e, Decision) else e.fault.kind
        for e in proxy.history.entries
    ]
    assert kinds == ["Decision", "revoke", "Decision"]
    assert [e.seq for e in proxy.history.entries] == [1, 2, 3]


def test_rotations_on_the_wall_clock_are_recorded_before_they_sign() -> None:
    from jitchaos import OffsetClock, SystemClock

    # A clock that moves between two readings: rotating "now" must not be "in the past".
    with EmbeddedIdP(standard_config(), clock=SystemClock()).in_thread() as idp:
        key = idp.rotate_keys()
        (event,) = [e for e in idp.ledger.events if isinstance(e, KeyPublished)]
        assert (event.kid, event.signs_from) == (key.kid, event.at)
    with ChaosProxy(standard_config(), clock=OffsetClock()).in_thread() as proxy:
        for fault in (
            RotateKeys(mode="publish-ahead", ahead=0),
            RotateKeys(mode="add"),
            RotateKeys(mode="publish-ahead", ahead=600),
            RotateKeys(mode="remove-old"),
        ):
            assert proxy.apply(fault).applied
        assert proxy.keys is not None
        published = [e.kid for e in proxy.ledger.events if isinstance(e, KeyPublished)]
        # Every key the ring holds was recorded; the one published ahead survived remove-old.
        assert {key.kid for key in proxy.keys.keys} <= set(published)
        assert len(proxy.keys.keys) == 2
        assert proxy.keys.is_pending(proxy.keys.keys[-1])
