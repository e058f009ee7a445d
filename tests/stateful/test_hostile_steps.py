"""A forged token is hostile when it is presented: the machine forges temporal edges against
its own clock, not against the issue time of the token it starts from."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from examples import stateless_jwt
from jitchaos import AuthChaosMachine, Policy
from tests.stateful.test_report import Picks


class Stateless(AuthChaosMachine):
    # Validates signature, issuer, audience and times; never asks about revocation, which
    # no rule below exercises.
    service = staticmethod(functools.partial(stateless_jwt.make_app, fixed=False))
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}}
    policy = Policy(staleness=30)


def test_a_token_forged_with_iat_in_the_future_is_so_when_presented() -> None:
    machine = Stateless()
    try:
        token: Any = machine.grant(Picks(frozenset({"read"}), "GET /read"))
        machine.advance(Picks(100_000))  # long after the token's iat (and its exp)
        # iat one second ahead of the clock, as the simplest draw of the variant gives.
        machine.replay_step(
            {
                "rule": "submit_hostile",
                "args": {"token": {"token": machine.held.index(token)}},
                "draws": [
                    {
                        "hostile": "temporal-edge",
                        "variant": "iat in the future (exp +301 s from now)",
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
