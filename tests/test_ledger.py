from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitchaos import (
    Expired,
    Granted,
    InvalidArgument,
    IssuedToken,
    Ledger,
    LedgerError,
    ManualClock,
    Narrowed,
    Outcome,
    Principal,
    Refreshed,
    Revoked,
    TokenKind,
    TokenStatus,
    Widened,
)

ALICE = Principal.subject("alice")
_counter = itertools.count()


def token(
    kind: TokenKind = TokenKind.ACCESS,
    *,
    at: float,
    ttl: float = 300,
    scopes: frozenset[str] = frozenset({"read", "write"}),
) -> IssuedToken:
    return IssuedToken(
        fingerprint=f"fp{next(_counter):014d}",
        kind=kind,
        issued_at=at,
        expires_at=at + ttl,
        scopes=scopes,
        kid="k1",
    )


def new_grant(
    ledger: Ledger,
    principal: Principal = ALICE,
    scopes: frozenset[str] = frozenset({"read", "write"}),
) -> tuple[Granted, str, str]:
    now = ledger.clock.now()
    access = token(at=now, scopes=scopes)
    refresh = token(TokenKind.REFRESH, at=now, ttl=3600, scopes=scopes)
    granted = ledger.grant(
        principal=principal, client_id="web", scopes=scopes, tokens=[access, refresh]
    )
    return granted, access.fingerprint, refresh.fingerprint


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(ManualClock(start=1000))


def outcome(
    ledger: Ledger, fp: str, at: float, scopes: set[str] | None = None, **kwargs: float
) -> Outcome:
    return ledger.verdict(fp, at=at, scopes=scopes or {"read"}, **kwargs).outcome


def test_valid_token_must_be_allowed(ledger: Ledger) -> None:
    _, access, _ = new_grant(ledger)
    verdict = ledger.verdict(access, at=1100, scopes={"read", "write"})
    assert verdict.outcome is Outcome.MUST_ALLOW
    assert isinstance(verdict.evidence[0], Granted)


def test_unknown_and_refresh_tokens_must_be_denied(ledger: Ledger) -> None:
    _, _, refresh = new_grant(ledger)
    assert outcome(ledger, "nope", 1100) is Outcome.MUST_DENY
    verdict = ledger.verdict(refresh, at=1100)
    assert verdict.outcome is Outcome.MUST_DENY
    assert "refresh token" in verdict.reason


def test_natural_expiry_and_leeway(ledger: Ledger) -> None:
    _, access, _ = new_grant(ledger)  # valid [1000, 1300)
    assert outcome(ledger, access, 1299) is Outcome.MUST_ALLOW
    assert outcome(ledger, access, 1300) is Outcome.MUST_DENY
    assert outcome(ledger, access, 1296, leeway=5) is Outcome.EITHER
    assert outcome(ledger, access, 1304, leeway=5) is Outcome.EITHER
    assert outcome(ledger, access, 1305, leeway=5) is Outcome.MUST_DENY
    assert outcome(ledger, access, 999) is Outcome.MUST_DENY
    assert outcome(ledger, access, 998, leeway=5) is Outcome.EITHER
    # Staleness never stretches natural expiry: exp is in the token for anyone to check.
    assert outcome(ledger, access, 1300, staleness=60) is Outcome.MUST_DENY


def test_revocation_with_and_without_staleness(ledger: Ledger) -> None:
    _, access, _ = new_grant(ledger)
    ledger.clock.advance(50)  # type: ignore[attr-defined]
    revoked = ledger.revoke(token=access)
    assert isinstance(revoked, Revoked)
    assert outcome(ledger, access, 1049) is Outcome.MUST_ALLOW
    assert outcome(ledger, access, 1050) is Outcome.MUST_DENY
    assert outcome(ledger, access, 1050, staleness=30) is Outcome.EITHER
    assert outcome(ledger, access, 1079, staleness=30) is Outcome.EITHER
    verdict = ledger.verdict(access, at=1080, scopes={"read"}, staleness=30)
    assert verdict.outcome is Outcome.MUST_DENY
    assert "revoked at 1970-01-01T00:17:30.000Z (t+50.0 s)" in verdict.reason
    assert verdict.evidence[-1] == revoked
    # Revoking what is already revoked changes nothing and records nothing.
    assert ledger.revoke(token=access) is None


def test_narrowing_and_widening(ledger: Ledger) -> None:
    granted, access, _refresh = new_grant(ledger)
    ledger.clock.advance(10)  # type: ignore[attr-defined]
    assert isinstance(ledger.narrow(granted.grant_id, {"read"}), Narrowed)
    assert outcome(ledger, access, 1011, {"write"}) is Outcome.MUST_DENY
    assert outcome(ledger, access, 1011, {"read"}) is Outcome.MUST_ALLOW
    assert outcome(ledger, access, 1011, {"write"}, staleness=5) is Outcome.EITHER
    assert outcome(ledger, access, 1005, {"write"}) is Outcome.MUST_ALLOW  # before the change
    ledger.clock.advance(10)  # type: ignore[attr-defined]
    assert isinstance(ledger.widen(granted.grant_id, {"read", "write"}), Widened)
    # The grant allows write again, and the old token still carries it.
    assert outcome(ledger, access, 1021, {"write"}) is Outcome.MUST_ALLOW
    assert outcome(ledger, access, 1021, {"write"}, staleness=5) is Outcome.EITHER


def test_widening_does_not_widen_existing_tokens(ledger: Ledger) -> None:
    granted, access, _ = new_grant(ledger, scopes=frozenset({"read"}))
    ledger.widen(granted.grant_id, {"read", "write"})
    assert outcome(ledger, access, 1001, {"write"}) is Outcome.MUST_DENY


def test_narrow_and_widen_check_their_direction(ledger: Ledger) -> None:
    granted, _, _ = new_grant(ledger)
    with pytest.raises(InvalidArgument, match="not a subset"):
        ledger.narrow(granted.grant_id, {"admin"})
    with pytest.raises(InvalidArgument, match="not a superset"):
        ledger.widen(granted.grant_id, {"read"})
    assert ledger.narrow(granted.grant_id, {"read", "write"}) is None
    with pytest.raises(LedgerError, match="g99"):
        ledger.narrow("g99", {"read"})
    assert len(ledger.events) == 1


def test_refresh_rotation_and_family_revocation(ledger: Ledger) -> None:
    granted, access, refresh = new_grant(ledger)
    ledger.clock.advance(100)  # type: ignore[attr-defined]
    new_access = token(at=1100)
    new_refresh = token(TokenKind.REFRESH, at=1100, ttl=3600)
    assert isinstance(ledger.refresh(refresh, tokens=[new_access, new_refresh]), Refreshed)
    assert ledger.lookup(refresh).status(1100) is TokenStatus.SPENT  # type: ignore[union-attr]
    with pytest.raises(LedgerError, match="spent"):
        ledger.refresh(refresh, tokens=[token(at=1100)])
    # The old access token stays valid until its own exp; the family revocation ends all.
    assert outcome(ledger, access, 1100) is Outcome.MUST_ALLOW
    revoked = ledger.revoke(grant=granted.grant_id, reason="refresh token reused")
    assert revoked is not None
    assert set(revoked.fingerprints) == {access, new_access.fingerprint, new_refresh.fingerprint}
    assert revoked.grant_ids == (granted.grant_id,)


def test_refresh_cannot_exceed_the_grant(ledger: Ledger) -> None:
    granted, _, refresh = new_grant(ledger)
    ledger.narrow(granted.grant_id, {"read"})
    with pytest.raises(InvalidArgument, match="more than the grant"):
        ledger.refresh(refresh, tokens=[token(at=1000)])  # carries read+write


def test_revoke_principal_and_kid(ledger: Ledger) -> None:
    _, alice1, _ = new_grant(ledger)
    _, alice2, _ = new_grant(ledger)
    _, bob, _ = new_grant(ledger, Principal.subject("bob"))
    revoked = ledger.revoke(principal=ALICE)
    assert revoked is not None
    assert {alice1, alice2} <= set(revoked.fingerprints)
    assert outcome(ledger, bob, 1000) is Outcome.MUST_ALLOW
    revoked_kid = ledger.revoke(kid="k1")
    assert revoked_kid is not None
    assert bob in revoked_kid.fingerprints


def test_early_expiry(ledger: Ledger) -> None:
    _, access, _ = new_grant(ledger)
    ledger.clock.advance(5)  # type: ignore[attr-defined]
    assert isinstance(ledger.expire(token=access), Expired)
    assert ledger.lookup(access).status(1005) is TokenStatus.EXPIRED  # type: ignore[union-attr]
    assert outcome(ledger, access, 1005) is Outcome.MUST_DENY
    assert outcome(ledger, access, 1005, staleness=10) is Outcome.EITHER


def test_selectors(ledger: Ledger) -> None:
    _, access, _ = new_grant(ledger)
    with pytest.raises(InvalidArgument, match="exactly one"):
        ledger.revoke()
    with pytest.raises(InvalidArgument, match="exactly one"):
        ledger.revoke(token=access, principal=ALICE)
    with pytest.raises(LedgerError, match="no issued token"):
        ledger.revoke(token="nope")


@pytest.mark.parametrize("bad", [{"at": float("nan")}, {"staleness": -1}, {"leeway": True}])
def test_verdict_refuses_bad_arguments(ledger: Ledger, bad: dict[str, Any]) -> None:
    _, access, _ = new_grant(ledger)
    arguments: dict[str, Any] = {"at": 1000, **bad}
    with pytest.raises(InvalidArgument, match=next(iter(bad))):
        ledger.verdict(access, **arguments)


def test_open_grants(ledger: Ledger) -> None:
    g1, _, _ = new_grant(ledger)
    g2, _, _ = new_grant(ledger)
    ledger.revoke(grant=g1.grant_id)
    assert [g.grant_id for g in ledger.open_grants(1000)] == [g2.grant_id]
    assert ledger.open_grants(1000 + 3600) == ()


# Properties over random histories.

SCOPES = ["read", "write", "admin"]


@st.composite
def histories(draw: st.DrawFn) -> Ledger:
    """A ledger after a random sequence of grants, refreshes, narrowings, revocations,
    expiries and clock moves."""
    ledger = Ledger(ManualClock(start=1000))
    clock: ManualClock = ledger.clock  # type: ignore[assignment]
    for _ in range(draw(st.integers(1, 12))):
        action = draw(
            st.sampled_from(
                ["grant", "refresh", "narrow", "widen", "revoke", "revoke-all", "expire", "tick"]
            )
        )
        grants = ledger.grants
        if action == "grant" or not grants:
            scopes = frozenset(draw(st.sets(st.sampled_from(SCOPES), min_size=1)))
            new_grant(ledger, Principal.subject(draw(st.sampled_from(["a", "b"]))), scopes)
            continue
        grant = draw(st.sampled_from(grants))
        if action == "tick":
            clock.advance(draw(st.integers(0, 400)))
        elif action == "refresh":
            live = [
                fp
                for fp in grant.fingerprints
                if (record := ledger.lookup(fp)) is not None
                and record.token.kind is TokenKind.REFRESH
                and record.status(clock.now()) is TokenStatus.ACTIVE
            ]
            if live:
                now = clock.now()
                ledger.refresh(
                    live[0],
                    tokens=[
                        token(at=now, scopes=grant.scopes),
                        token(TokenKind.REFRESH, at=now, ttl=3600, scopes=grant.scopes),
                    ],
                )
        elif action == "narrow" and grant.scopes:
            ledger.narrow(grant.grant_id, draw(st.sets(st.sampled_from(sorted(grant.scopes)))))
        elif action == "widen":
            ledger.widen(grant.grant_id, grant.scopes | draw(st.sets(st.sampled_from(SCOPES))))
        elif action == "revoke":
            ledger.revoke(token=draw(st.sampled_from(grant.fingerprints)))
        elif action == "revoke-all":  # every live token of the principal, across grants
            ledger.revoke(principal=grant.principal)
        else:
            ledger.expire(grant=grant.grant_id)
    return ledger


def queries(ledger: Ledger) -> st.SearchStrategy[tuple[str, float, frozenset[str]]]:
    fps = [fp for g in ledger.grants for fp in g.fingerprints]
    return st.tuples(
        st.sampled_from(fps),
        st.integers(900, 6000).map(float),
        st.frozensets(st.sampled_from(SCOPES)),
    )


@given(st.data())
def test_with_no_staleness_and_no_leeway_the_truth_is_two_valued(data: st.DataObject) -> None:
    ledger = data.draw(histories())
    fp, at, scopes = data.draw(queries(ledger))
    assert ledger.verdict(fp, at=at, scopes=scopes).outcome is not Outcome.EITHER


@given(st.data())
def test_more_staleness_only_turns_certainty_into_either(data: st.DataObject) -> None:
    ledger = data.draw(histories())
    fp, at, scopes = data.draw(queries(ledger))
    small, extra = data.draw(st.integers(0, 300)), data.draw(st.integers(0, 300))
    strict = ledger.verdict(fp, at=at, scopes=scopes, staleness=small).outcome
    loose = ledger.verdict(fp, at=at, scopes=scopes, staleness=small + extra).outcome
    assert loose in (strict, Outcome.EITHER)


@given(st.data())
def test_replaying_the_events_gives_the_same_truth(data: st.DataObject) -> None:
    ledger = data.draw(histories())
    replayed = Ledger.replay(ledger.events)
    assert replayed.events == ledger.events
    fp, at, scopes = data.draw(queries(ledger))
    staleness = data.draw(st.integers(0, 100))
    assert replayed.verdict(fp, at=at, scopes=scopes, staleness=staleness) == ledger.verdict(
        fp, at=at, scopes=scopes, staleness=staleness
    )
    assert [e.seq for e in ledger.events] == list(range(1, len(ledger.events) + 1))


def test_a_change_at_the_instant_of_issue_still_has_a_before(ledger: Ledger) -> None:
    # Granted and narrowed in the same clock second: a service may have seen read+write.
    granted, access, _ = new_grant(ledger)
    ledger.narrow(granted.grant_id, {"read"})
    assert outcome(ledger, access, 1000, {"write"}) is Outcome.MUST_DENY
    assert outcome(ledger, access, 1030, {"write"}, staleness=60) is Outcome.EITHER
    assert outcome(ledger, access, 1060, {"write"}, staleness=60) is Outcome.MUST_DENY


@given(st.data())
def test_a_verdicts_evidence_is_every_event_about_its_token_and_grant_so_far(
    data: st.DataObject,
) -> None:
    ledger = data.draw(histories())
    fp, at, scopes = data.draw(queries(ledger))
    record = ledger.lookup(fp)
    assert record is not None

    def concerns(event: Any) -> bool:  # read off each event, against every event there is
        if isinstance(event, Granted | Refreshed):
            return any(t.fingerprint == fp for t in event.tokens)
        if isinstance(event, Revoked | Expired):
            return fp in event.fingerprints
        return getattr(event, "grant_id", None) == record.grant_id

    expected = tuple(e for e in ledger.events if e.at <= at and concerns(e))
    assert ledger.verdict(fp, at=at, scopes=scopes).evidence == expected


@given(st.data())
def test_a_grant_as_of_an_event_judges_its_tokens_as_a_replay_up_to_it_does(
    data: st.DataObject,
) -> None:
    ledger = data.draw(histories())
    fp, at, scopes = data.draw(queries(ledger))
    seq = data.draw(st.integers(1, len(ledger.events)))
    staleness = data.draw(st.integers(0, 100))
    record = ledger.lookup(fp)
    assert record is not None
    view = ledger._grant_as_of(record.grant_id, seq)
    replayed = Ledger.replay(ledger.events[:seq])
    assert view.verdict(fp, at=at, scopes=scopes, staleness=staleness) == replayed.verdict(
        fp, at=at, scopes=scopes, staleness=staleness
    )
    assert view.lookup(fp) == replayed.lookup(fp)


def test_a_grant_as_of_keeps_a_principal_wide_revocation_for_its_own_tokens(
    ledger: Ledger,
) -> None:
    first, fp, _ = new_grant(ledger, ALICE, frozenset({"read"}))
    second, _, _ = new_grant(ledger, ALICE, frozenset({"read"}))
    ledger.clock.advance(5)  # type: ignore[attr-defined]
    event = ledger.revoke(principal=ALICE)
    assert event is not None
    assert set(event.grant_ids) == {first.grant_id, second.grant_id}
    view = ledger._grant_as_of(first.grant_id, len(ledger.events))
    assert view.events == (first, event)  # the other grant's issue is not there
    at = ledger.clock.now()
    assert view.verdict(fp, at=at) == ledger.verdict(fp, at=at)
    assert view.verdict(fp, at=at).outcome is Outcome.MUST_DENY
    before = ledger._grant_as_of(first.grant_id, 2)  # the two grants, not the revocation
    assert before.verdict(fp, at=at).outcome is Outcome.MUST_ALLOW


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"kind": "refresh"}, "kind='refresh' must be a TokenKind"),  # was taken as access
        ({"issued_at": "0"}, "issued_at='0' must be a finite number"),
        ({"expires_at": float("nan")}, "expires_at=nan must be a finite number"),
        ({"fingerprint": None}, "fingerprint=None must be a non-empty str"),
        ({"kid": 5}, "kid=5 must be a str or None"),
    ],
)
def test_an_issued_token_says_what_is_wrong(fields: dict[str, Any], names: str) -> None:
    settings: dict[str, Any] = {
        "fingerprint": "fp",
        "kind": TokenKind.ACCESS,
        "issued_at": 0,
        "expires_at": 10,
        "scopes": {"read"},
        **fields,
    }
    with pytest.raises(InvalidArgument) as caught:
        IssuedToken(**settings)
    assert names in str(caught.value)


def test_grants_and_leases_refuse_what_the_audit_could_not_read_back() -> None:
    ledger = Ledger(ManualClock(start=1000))
    one = token(at=1000)
    for principal, client_id, names in [
        (None, "web", "principal=None must be a Principal"),
        (ALICE, None, "client_id=None must be a non-empty string"),
    ]:
        with pytest.raises(InvalidArgument, match=names):
            ledger.grant(principal=principal, client_id=client_id, scopes={"read"}, tokens=[one])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=f"token {one.fingerprint} was already issued"):
        ledger.grant(principal=ALICE, client_id="web", scopes={"read", "write"}, tokens=[one, one])
    assert ledger.seq == 0
    granted, _, _ = new_grant(ledger)
    leases: list[tuple[dict[str, Any], str]] = [
        ({"requested_ttl": float("nan"), "ttl": 5}, "requested_ttl=nan"),
        ({"requested_ttl": 5, "ttl": -5}, "ttl=-5 must be a finite number >= 0"),
        ({"requested_ttl": 5, "ttl": 5, "max_ttl": float("inf")}, "max_ttl=inf"),
    ]
    for settings, names in leases:
        with pytest.raises(InvalidArgument, match=names):
            ledger.lease(granted.grant_id, holder="t", **settings)
    assert ledger.seq == 1
    with pytest.raises(InvalidArgument, match="events holds 1, not a ledger event"):
        Ledger.replay([granted, 1])  # type: ignore[list-item]  # the point of the test
    doubled = Granted(
        seq=1,
        at=1000,
        grant_id="g1",
        principal=ALICE,
        client_id="web",
        scopes={"read"},
        tokens=(one, one),
    )
    with pytest.raises(LedgerError, match="already issued"):
        Ledger.replay([doubled])


@given(st.data())
def test_forgetting_closed_grants_keeps_every_verdict_past_the_horizon(
    data: st.DataObject,
) -> None:
    """A long run lets closed grants go (#20 point 1). Past the horizon plus the policy's
    windows, every verdict is what the whole ledger says: kept tokens' word for word, and a
    forgotten token's a denial, as it must be; positions keep their meaning."""
    ledger = data.draw(histories())
    whole = Ledger.replay(ledger.events)
    horizon = float(data.draw(st.integers(900, 6000)))
    gone = ledger.forget_closed(horizon)
    assert ledger.forgotten == gone
    assert ledger.seq == whole.seq
    assert ledger.origin == whole.origin
    kept_grants = {g.grant_id for g in ledger.grants}
    assert len(kept_grants) + gone == len(whole.grants)
    for grant in whole.grants:
        if grant.grant_id not in kept_grants:
            assert all(ledger.lookup(fp) is None for fp in grant.fingerprints)
    position = data.draw(st.integers(0, whole.seq))
    assert set(ledger.events_since(position)) <= set(whole.events[position:])
    staleness = data.draw(st.integers(0, 100))
    later = data.draw(st.integers(0, 3000))
    scopes = data.draw(st.frozensets(st.sampled_from(SCOPES)))
    for fp in (fp for grant in whole.grants for fp in grant.fingerprints):
        for at in (horizon + staleness, horizon + staleness + later):
            truth = whole.verdict(fp, at=at, scopes=scopes, staleness=staleness)
            said = ledger.verdict(fp, at=at, scopes=scopes, staleness=staleness)
            if ledger.lookup(fp) is None:
                assert truth.outcome is Outcome.MUST_DENY
                assert said.outcome is Outcome.MUST_DENY
                assert "forgotten" in said.reason
            else:
                assert (said.outcome, said.reason) == (truth.outcome, truth.reason)


def test_a_forgotten_grant_leaves_its_events_and_a_shared_event_stays(ledger: Ledger) -> None:
    clock: ManualClock = ledger.clock  # type: ignore[assignment]
    first, _, _ = new_grant(ledger, Principal.subject("a"))
    ledger.revoke(grant=first.grant_id)
    assert ledger.forget_closed(clock.now() + 60) == 0  # revoked, but not yet past its exp
    clock.advance(3600)  # its refresh token's exp
    second, kept, _ = new_grant(ledger, Principal.subject("a"))
    position = ledger.seq
    clock.advance(10)
    third, _, _ = new_grant(ledger, Principal.subject("b"))
    assert ledger.forget_closed(clock.now()) == 1
    assert [g.grant_id for g in ledger.grants] == [second.grant_id, third.grant_id]
    assert first not in ledger.events
    assert ledger.events_since(position) == (ledger.events[-1],)
    assert ledger.next_event(position) == ledger.events[-1]
    assert ledger.forget_closed(clock.now()) == 0  # nothing else has closed
    ledger.revoke(principal=Principal.subject("a"))  # one event for the kept grant
    assert ledger.verdict(kept, at=clock.now()).outcome is Outcome.MUST_DENY
    with pytest.raises(InvalidArgument):
        ledger.forget_closed("soon")  # type: ignore[arg-type]


def test_grant_ids_are_never_reused_after_forgetting(ledger: Ledger) -> None:
    clock: ManualClock = ledger.clock  # type: ignore[assignment]
    first, _, _ = new_grant(ledger)
    clock.advance(4000)
    assert ledger.forget_closed(clock.now()) == 1
    second, _, _ = new_grant(ledger)
    assert second.grant_id != first.grant_id
    assert Ledger.replay([first, second]).grants[-1].grant_id == second.grant_id
