"""On the wall clock a machine waits straight to the edges that matter (#17 point 2). A client
under test must also be waited past its recovery window after the refusal that follows a
revocation or expiry: without that edge, presenting the dead token again was judged only when
some other wait happened to pass it (a median of 28 s against a 1 s window)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from jitchaos import AuthChaosMachine, ClientChaosMachine, Policy
from jitchaos.known_bugs import permission_cache, refresh_on_timer


class Client(ClientChaosMachine):
    client = staticmethod(refresh_on_timer.make_app)
    routes: ClassVar = {"GET /read": {"read"}}
    policy = Policy(recovery=1, staleness=2)


class Service(AuthChaosMachine):
    service = staticmethod(permission_cache.make_app)
    routes: ClassVar = {"GET /read": {"read"}}
    policy = Policy(recovery=1, staleness=2)


def _edges_after(machine_class: type[Any], rule: str) -> list[float]:
    machine = machine_class()
    try:
        machine.steps = [{"rule": rule, "args": {}, "draws": []}]
        machine._step_times = [machine.clock.now()]
        return list(machine._edges())
    finally:
        machine.teardown()


@pytest.mark.parametrize("rule", ["revoke", "expire"])
def test_a_client_is_waited_past_its_recovery_after_the_refusal(rule: str) -> None:
    first, second = _edges_after(Client, rule)
    assert first == pytest.approx(2.5 + 0.05, abs=0.11)  # just past the staleness window
    # The refusal comes just past it; recovery (1 s) later the dead token must be gone.
    assert second == pytest.approx(first + 0.5 + 1, abs=0.11)


def test_a_service_has_no_recovery_edge() -> None:
    assert len(_edges_after(Service, "revoke")) == 1
