"""No verdict without evidence (#18 point 1): a run that judged nothing fails with one sentence
naming the likely cause, as a Hypothesis health check fails a test it cannot trust; each check
is suppressed by name."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import pytest
from aiohttp import web

from jitchaos import AuthChaosMachine, Policy
from jitchaos._run import run_scenario
from jitchaos._vacuity import VacuousRun, check_names
from jitchaos.errors import InvalidArgument
from tests.common.cli import run_cli

ROUTES = {"GET /read": {"read"}, "POST /write": {"write"}}


def answering(status: int) -> Any:
    """A service that answers ``status`` to every call, whatever the token."""

    def make_app(**_: Any) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            return web.json_response({"error": "broken"}, status=status)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    return make_app


class Grants(AuthChaosMachine):
    actions = frozenset({"grant", "call", "revoke", "advance"})
    policy = Policy(staleness=5)
    routes: ClassVar = ROUTES


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (500, "the service cannot validate the IdP's tokens"),
        (503, "the service cannot reach the IdP"),
    ],
)
def test_a_service_that_answers_only_5xx_gives_no_verdict(status: int, cause: str) -> None:
    outcome = run_scenario(Grants, service=answering(status), examples=20)
    assert outcome.vacuous
    assert outcome.failure is not None
    assert re.search(rf"all \d+ calls to \S+ \S+ answered 5xx \(\d+ x {status}\)", outcome.failure)
    assert cause in outcome.failure
    assert "(suppress: all-5xx)" in outcome.failure
    assert outcome.format().startswith("no verdict after 20 examples")


def test_each_check_is_suppressed_by_name() -> None:
    outcome = run_scenario(Grants, service=answering(500), examples=10, suppress=["all-5xx"])
    assert outcome.vacuous  # nothing determinate either: the next check speaks
    assert "none of the" in (outcome.failure or "")
    assert "(suppress: none-determinate)" in (outcome.failure or "")
    clean = run_scenario(
        Grants,
        service=answering(500),
        examples=10,
        suppress=["all-5xx", "none-determinate", "faults-unused"],
    )
    assert not clean.vacuous
    assert clean.failure is None


def test_a_machine_test_case_fails_on_a_vacuous_run() -> None:
    class Broken(Grants):
        service = staticmethod(answering(503))

    with pytest.raises(VacuousRun, match=r"Broken: no verdict: all \d+ calls to"):
        Broken.run(quiet=True, notebooks=None)
    Broken._worlds.pop(Broken).close()


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"\['all-500'\] are not vacuity checks"):
        check_names("suppress", ["all-500"])
    result = run_cli(
        "run",
        "strategies/role_narrowing.py",
        "--service",
        "http://127.0.0.1:9",
        "--suppress",
        "all-500",
    )
    assert result.returncode == 2
    assert "--suppress" in result.stderr
