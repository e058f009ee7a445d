"""A forged token is hostile when it is presented: the machine forges temporal edges against
its own clock, not against the issue time of the token it starts from."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ClassVar

import aiohttp
import jwt
from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from jitchaos import AuthChaosMachine, Policy
from jitchaos.known_bugs import stateless_jwt
from jitchaos.known_bugs._service import fetch_jwks, service, session_context
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


def test_what_only_the_strict_profile_refuses_is_not_submitted() -> None:
    # Unknown or repeated scopes, an iat in the future, a 30-year life, an audience list that
    # includes ours: a correct service may accept all of them, so the machine submits none.
    run_state_machine_as_test(
        Lenient,
        settings=settings(
            max_examples=150,
            stateful_step_count=6,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
