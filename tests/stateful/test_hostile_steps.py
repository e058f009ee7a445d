"""A forged token is hostile when it is presented: the machine forges temporal edges against
its own clock, not against the issue time of the token it starts from."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ClassVar

import aiohttp
import jwt
import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from examples.stacks import free_port, running
from jitchaos import AuthChaosMachine, Policy
from jitchaos._run import run_scenario
from jitchaos.known_bugs import stateless_jwt
from jitchaos.known_bugs._service import fetch_jwks, service, session_context
from jitchaos.strategies import FORGERIES
from tests.stateful.test_report import Picks


class Stateless(AuthChaosMachine):
    # Validates signature, issuer, audience and times; never asks about revocation, which
    # no rule below exercises.
    service = staticmethod(functools.partial(stateless_jwt.make_app, fixed=False))
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}}
    policy = Policy(staleness=30)


def test_a_token_forged_with_nbf_in_the_future_is_so_when_presented() -> None:
    machine = Stateless()
    try:
        token: Any = machine.grant(Picks(frozenset({"read"}), "GET /read"))
        machine.advance(Picks(100_000))  # long after the token's iat (and its exp)
        # nbf one second ahead of the clock, as the simplest draw of the variant gives.
        machine.replay_step(
            {
                "rule": "submit_hostile",
                "args": {"token": {"token": machine.held.index(token)}},
                "draws": [
                    {
                        "hostile": "temporal-edge",
                        "variant": "nbf in the future (exp +301 s from now)",
                    },
                    "GET /read",
                ],
            }
        )
        forged = [d for d in machine.proxy.history.decisions if d.fingerprint in machine.hostile]
        assert [d.status for d in forged] == [401]
        assert machine.violations() == ()
    finally:
        machine.teardown()


def lenient_but_correct(
    *, idp_url: str, issuer: str | None = None, now: Callable[[], float] = time.time
) -> web.Application:
    """What RFC 9068 §4 requires and nothing more: ``typ`` at+jwt, the exact issuer, an
    ``aud`` that contains ours (a list will do), the signature with the algorithm pinned,
    ``exp`` and ``nbf``. No maximum lifetime, no check of ``iat``, unknown or repeated scopes
    ignored."""
    iss = issuer if issuer is not None else idp_url
    keys: dict[str, jwt.PyJWK] = {}
    session = web.AppKey("session", aiohttp.ClientSession)

    async def check(token: str) -> frozenset[str] | None:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "at+jwt":
                return None
            kid = header.get("kid")
            if kid not in keys:
                keys.update(await fetch_jwks(app[session], f"{idp_url}/jwks"))
            key = keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience="jitchaos",
                issuer=iss,
                options={
                    "require": ["exp"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            return None
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
            return None
        if now() >= exp or now() < nbf:
            return None
        scope = claims.get("scope", "")
        return frozenset(scope.split(" ")) - {""} if isinstance(scope, str) else None

    app = service(check)
    session_context(app, session)
    return app


class Lenient(AuthChaosMachine):
    service = staticmethod(lenient_but_correct)
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}, "POST /write": {"write"}}
    policy = Policy(staleness=30)
    actions = frozenset({"grant", "submit_hostile"})


SETTINGS = settings(
    max_examples=150,
    stateful_step_count=6,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def test_what_only_the_strict_profile_refuses_is_judged_only_under_it() -> None:
    # Unknown or repeated scopes, an iat in the future, a 30-year life, an audience list that
    # includes ours: a correct service may accept all of them. They are submitted, and not
    # judged unless the policy asks for the strict profile.
    run_state_machine_as_test(Lenient, settings=SETTINGS)

    class Strict(Lenient):
        policy = Policy(staleness=30, strict_profile=True)

    with pytest.raises((AssertionError, BaseExceptionGroup)) as caught:
        run_state_machine_as_test(Strict, settings=SETTINGS)
    assert "[profile-deviation-accepted]" in str(caught.value)


class Catalogue(AuthChaosMachine):
    """Grants and every class of the hostile-token catalogue; remembers what it submitted."""

    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}, "POST /write": {"write"}}
    policy = Policy(staleness=30)
    actions = frozenset({"grant", "submit_hostile"})
    submitted: ClassVar[dict[str, set[str]]] = {}

    def teardown(self) -> None:
        for forged in self.hostile.values():
            type(self).submitted.setdefault(forged.finding, set()).add(forged.attack)
        super().teardown()


@pytest.mark.slow
def test_the_catalogue_finds_nothing_in_a_correct_pyjwt_service() -> None:
    """PyJWT's PyJWKClient and jwt.decode with RS256, issuer, audience and exp required, in
    its own process: every forgery and every confusion refused, profile deviations (typ JWT,
    exp at the boundary, which PyJWT does not check) not judged (issue #18)."""
    Catalogue.submitted = {}
    port = free_port()
    with running("pyjwt", f"http://127.0.0.1:{port}") as url:
        outcome = run_scenario(
            Catalogue,
            service=url,
            routes=Catalogue.routes,
            listen=("127.0.0.1", port),
            examples=150,
            seed=0,
        )
    assert outcome.failure is None, outcome.format()
    assert outcome.report.judged > 150, outcome.format()
    assert Catalogue.submitted["forgery"] == set(FORGERIES), Catalogue.submitted
    assert Catalogue.submitted["confusion"] >= {"token-type-confusion", "temporal-edge"}
    assert Catalogue.submitted["profile"] >= {"header-oddity", "scope-shape"}


def unverified(
    *, idp_url: str, issuer: str | None = None, now: Callable[[], float] = time.time
) -> web.Application:
    """Reads the claims without checking the signature: PyJWT's ``verify_signature`` off,
    which (a real trap) also turns off the audience, issuer and time checks it is asked for.
    Anyone's forgery gets in, and so does another API's token."""
    iss = issuer if issuer is not None else idp_url

    async def check(token: str) -> frozenset[str] | None:
        try:
            claims = jwt.decode(
                token,
                options={"verify_signature": False, "require": ["exp"]},
                audience="jitchaos",
                issuer=iss,
            )
        except jwt.PyJWTError:
            return None
        if not isinstance(claims.get("exp"), int) or now() >= claims["exp"]:
            return None
        scope = claims.get("scope", "")
        return frozenset(scope.split()) if isinstance(scope, str) else None

    return service(check)


class Unverified(Catalogue):
    service = staticmethod(unverified)


def test_each_attack_class_a_service_falls_for_is_reported_apart() -> None:
    outcome = run_scenario(
        Unverified, service=unverified, routes=Unverified.routes, examples=100, seed=0
    )
    assert outcome.failure is not None
    attacks = {
        found.attack
        for record in outcome.records
        for found in record.violations
        if found.kind == "hostile-token-accepted"
    }
    # Each with its own shrunk sequence: the run does not stop at the first class.
    assert len(attacks) >= 4, outcome.format()
    assert attacks <= FORGERIES, attacks
    confused = {
        found.attack
        for record in outcome.records
        for found in record.violations
        if found.kind == "confused-token-accepted"
    }
    assert "token-type-confusion" in confused, outcome.format()
