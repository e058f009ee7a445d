"""The machine against the known-bug services: each bug is found, its shrunk sequence holds the
fault that causes it, and each correct twin runs many examples without a false alarm."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from jitchaos import AuthChaosMachine, ClientChaosMachine, Failure, Policy
from jitchaos._runner import RUNS
from jitchaos.known_bugs import (
    concurrent_refresh,
    introspection_cache,
    jwks_cache,
    jwks_wiped,
    permission_cache,
    refresh_on_timer,
    shared_cache,
    stateless_jwt,
)
from jitchaos.notebook import Repro
from tests.stateful.test_report import Picks

ROUTES = {"GET /read": {"read"}, "POST /write": {"write"}}
FIND = settings(
    max_examples=400,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    # A fixed search order: CI proves the same thing every time (bench/ measures the spread).
    derandomize=True,
    # No explain phase: it reruns the failure under a tracer, which costs more than the search.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
CLEAN = settings(FIND, max_examples=200)


CLIENTS = {refresh_on_timer.make_app, concurrent_refresh.make_app}
# A user-facing service: its tokens come from users logging in, not from client credentials
# (whose one principal would make a leak between grants, not between principals).
ACTIONS = {
    shared_cache.make_app: AuthChaosMachine.all_actions - {"grant"},
    # The derandomized search meets an accepted temporal-edge forgery before the rotation bug
    # (rotate, 301 s, a new token), a finding of its own under study; this case is the JWKS.
    jwks_cache.make_app: AuthChaosMachine.all_actions - {"submit_hostile"},
}


def machine(factory: Callable[..., Any], policy: Policy, **options: Any) -> type[Any]:
    client = factory in CLIENTS
    return type(
        f"Machine_{factory.__module__.rsplit('.', 1)[-1]}_{options.get('fixed', False)}",
        (ClientChaosMachine if client else AuthChaosMachine,),
        {
            "client" if client else "service": staticmethod(functools.partial(factory, **options)),
            "routes": ROUTES,
            "policy": policy,
            "actions": ACTIONS.get(factory),
        },
    )


CASES = [
    # (service, policy, violation kinds, the rules one of which causes it)
    (
        permission_cache.make_app,
        Policy(staleness=30),
        # Keyed by subject: a narrowing is ignored, and so is a later grant with more scopes.
        # ... and a user's later token borrows scopes an earlier token had.
        {"narrowed-scope-honoured", "valid-token-rejected", "scope-not-enforced"},
        {"narrow", "grant", "login"},  # a second token for the same subject, either way
    ),
    (
        introspection_cache.make_app,
        Policy(staleness=30),
        {"revoked-token-accepted", "narrowed-scope-honoured", "expired-token-accepted"},
        {"revoke", "narrow", "advance", "expire"},
    ),
    # The JWT twins refetch an unknown kid at once but keep a key they know until the token
    # expires (jwks_cache, stateless_jwt) or for the minute between refreshes (jwks_wiped).
    (
        jwks_cache.make_app,
        Policy(staleness=300, key_staleness=300),
        {"valid-token-rejected"},
        {"rotate_keys"},
    ),
    (
        jwks_wiped.make_app,
        Policy(staleness=300, key_staleness=60),
        {"valid-token-rejected"},
        {"outage"},
    ),
    (
        stateless_jwt.make_app,
        Policy(staleness=30, key_staleness=300),
        {"revoked-token-accepted", "narrowed-scope-honoured", "expired-token-accepted"},
        {"revoke", "narrow", "expire"},
    ),
    (
        shared_cache.make_app,
        Policy(staleness=30),
        # One cache entry per OAuth client: whoever called first decides for every later user
        # (another user: a leak; the same user with other scopes; or after a narrowing).
        {
            "cross-principal-leak",
            "scope-not-enforced",
            "valid-token-rejected",
            "narrowed-scope-honoured",
        },
        {"login", "narrow"},
    ),
    (
        refresh_on_timer.make_app,
        Policy(recovery=1),
        {"no-recovery-after-revoke"},
        {"expire", "revoke"},
    ),
    (concurrent_refresh.make_app, Policy(), {"refresh-storm"}, {"burst"}),
]
NAMES = [str(case[0].__module__).rsplit(".", 1)[-1] for case in CASES]


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "policy", "kinds", "faults"), CASES, ids=NAMES)
def test_the_bug_is_found_and_shrunk(
    factory: Callable[..., Any], policy: Policy, kinds: set[str], faults: set[str]
) -> None:
    found = machine(factory, policy)
    with pytest.raises((AssertionError, ExceptionGroup)) as caught:
        found.run(settings=FIND, notebooks=None)
    # Each distinct violation kind is its own failure, shrunk on its own (an ExceptionGroup
    # when there are several).
    errors = (
        list(caught.value.exceptions)
        if isinstance(caught.value, ExceptionGroup)
        else [caught.value]
    )
    messages = []
    for error in errors:
        notes = "\n".join(getattr(error, "__notes__", []))
        messages.append(f"{error}\n{notes}")
        steps = [
            line
            for line in notes.splitlines()
            if ("state." in line or "= state." in line)
            and "no_violation" not in line
            and "teardown" not in line
            and "AuthChaosMachine" not in line
            and "Machine_" not in line
        ]
        # The hand-written minimal sequences have at most five steps; shrinking gets within
        # one.
        assert len(steps) <= 6, notes
    message = "\n".join(messages)
    assert any(f"[{kind}]" in message for kind in kinds), message
    assert any(f"state.{fault}(" in message for fault in faults), message
    # The remembered failures are the shrunk ones, one for each kind, and replaying each (no
    # Hypothesis, no example database) on a fresh IdP, proxy and service shows the same
    # violations; run() dropped the steps Hypothesis's shrinker left that they show without.
    failures = found.failures()
    assert len(failures) == len(errors)
    assert found.last_failure() in failures
    for failure in failures:
        assert 1 <= len(failure.steps) <= 6
        again = replayed_kinds(failure)
        assert again == failure.kinds, (again, failure)


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "policy"), [(c[0], c[1]) for c in CASES], ids=NAMES)
def test_the_correct_twin_raises_no_alarm(factory: Callable[..., Any], policy: Policy) -> None:
    run_state_machine_as_test(machine(factory, policy, fixed=True), settings=CLEAN)


@pytest.mark.slow
def test_a_twin_using_all_of_its_staleness_window_raises_no_alarm() -> None:
    # The introspection cache lives exactly as long as the policy allows: every answer it
    # gives from the cache is inside the window the checker tolerates, up to its edge.
    full = machine(introspection_cache.make_app, Policy(staleness=30), fixed=True, ttl=30.0)
    run_state_machine_as_test(full, settings=CLEAN)
    # And a cache living twice as long is a bug the machine finds (with the rules that matter
    # to an introspection cache: this is about the window's edge, not about the search).
    over = machine(introspection_cache.make_app, Policy(staleness=30), fixed=True, ttl=60.0)
    over.actions = frozenset({"grant", "revoke", "narrow", "expire", "advance"})
    with pytest.raises((AssertionError, ExceptionGroup)) as caught:
        over.run(settings=FIND, notebooks=None)
    errors = (
        caught.value.exceptions if isinstance(caught.value, ExceptionGroup) else [caught.value]
    )
    kinds = {type(error).__name__ for error in errors}
    assert kinds <= {"RevokedTokenAccepted", "NarrowedScopeHonoured", "ExpiredTokenAccepted"}


def test_the_shared_cache_leaks_one_users_permissions_to_another() -> None:
    # The shared cache's search may shrink to the same user logging in twice; the leak between
    # two users, driven by hand on the real service, is reported as what it is.
    cls = machine(shared_cache.make_app, Policy(staleness=30))
    state = cls()
    try:
        state.login("alice", Picks(frozenset({"read", "write"}), "POST /write"))
        state.login("bob", Picks(frozenset({"read"}), "POST /write"))
        found = state.violations()
    finally:
        state.teardown()
    assert [v.kind for v in found] == ["cross-principal-leak"]
    assert "subject:bob" in found[0].sentence
    assert "subject:alice" in found[0].sentence


@pytest.mark.parametrize("fixed", [False, True])
def test_a_new_kid_during_a_jwks_outage_is_unavailable_not_invalid(fixed: bool) -> None:
    # The twin once answered 401 here: its keys were fine, but a token signed by a kid it had
    # not seen needed a JWKS it could not fetch. (Found by a longer run of the twins.)
    cls = machine(jwks_wiped.make_app, Policy(staleness=300), fixed=fixed)
    state = cls()
    try:
        state.grant(Picks(frozenset({"read"}), "GET /read"))  # the keys are fetched
        state.rotate_keys("add")
        state.outage(Picks("jwks"), seconds=1)
        state.grant(Picks(frozenset({"read"}), "GET /read"))  # signed by the new kid
        found = state.violations()
        statuses = [d.status for d in state.proxy.history.decisions]
    finally:
        state.teardown()
    if fixed:
        assert found == ()
        assert statuses == [200, 503]
    else:
        assert [v.kind for v in found] == ["valid-token-rejected"]


def test_minimize_drops_the_steps_a_failure_shows_without() -> None:
    cls = machine(permission_cache.make_app, Policy(staleness=30))
    state = cls()
    try:
        state.rotate_keys("add")  # has nothing to do with the bug
        state.grant(Picks(frozenset({"read"}), "GET /read"))
        state.grant(Picks(frozenset({"read", "write"}), "POST /write"))  # refused: cached
        found = state.violations()
    finally:
        state.teardown()
    assert "valid-token-rejected" in {v.kind for v in found}
    RUNS.failed(cls, state.failure(found))
    minimal = cls.minimize()
    assert minimal is not None
    assert [step.rule for step in minimal.steps] == ["grant", "grant"]
    # A replayed step records what it drew: the minimal failure replays on its own.
    assert list(minimal.steps[1].draws) == [{"set": ["read", "write"]}, "POST /write"]
    assert cls.last_failure() is minimal
    assert "valid-token-rejected" in replayed_kinds(minimal)


def replayed_kinds(failure: Failure) -> set[str]:
    """The violation kinds a failure record shows when replayed step by step (no Hypothesis,
    no example database) on a fresh IdP, proxy and service, from its JSON."""
    repro = Repro(json.loads(json.dumps(failure.to_json())))
    try:
        for step in failure.steps:
            repro.step(step)
        return {v.kind for v in repro.machine.violations()}
    finally:
        repro.close()


def test_one_run_reports_every_distinct_violation_kind(tmp_path: Path) -> None:
    """A permission cache keyed by subject lets a later token borrow an earlier one's scopes
    and refuses a newly widened token: two bugs, each with its own shrunk steps and
    notebook, not only the first one found."""
    from jitchaos._run import run_scenario

    class Scenario(AuthChaosMachine):
        routes = ROUTES
        actions: ClassVar[frozenset[str]] = frozenset({"grant", "narrow", "advance"})

    outcome = run_scenario(
        Scenario,
        service=permission_cache.make_app,
        policy=Policy(staleness=30),
        examples=300,
        notebooks=tmp_path,
    )
    kinds = [record.violations[0].kind for record in outcome.records]
    assert "valid-token-rejected" in kinds, outcome.format()
    assert len(kinds) >= 2, outcome.format()
    assert len(kinds) == len(set(kinds))  # one record for each kind
    assert len(outcome.notebooks) == len(kinds)
    assert all(path.exists() for path in outcome.notebooks)
    assert outcome.format().startswith(f"{len(kinds)} distinct violations found at example ")
    for kind in kinds:
        assert f"[{kind}]" in (outcome.failure or "")
