"""Correct resource servers on PyJWT's PyJWKClient, Authlib and jose, each in its own process
with the library's defaults (examples/stacks), under the key-rotation scenarios of the
catalogue: no alarm under the catalogue's policies, and the one the issue reported under a
policy that ignores how JWKS clients really refetch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from examples.stacks import STACKS, run_catalogue
from jitchaos import Policy
from jitchaos._run import RunOutcome, load_scenario

ROOT = Path(__file__).resolve().parents[2]
ROTATION = ("client_credentials_rotation", "jwks_rotation")


def judged(outcome: RunOutcome) -> dict[str, Any]:
    rows: dict[str, Any] = outcome.report.as_dict()["faults"]  # type: ignore[assignment]
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("name", ROTATION)
@pytest.mark.parametrize("stack", STACKS)
def test_a_correct_service_raises_no_alarm_under_the_catalogue_policy(
    stack: str, name: str
) -> None:
    outcome = run_catalogue(stack, name, examples=25)
    assert outcome.failure is None, outcome.format()
    # Not vacuous: tokens were used after rotations and agreed with the exact truth.
    assert outcome.report.baseline, outcome.format()
    assert judged(outcome)["rotate_keys"]["recovered"] > 0, outcome.format()


@pytest.mark.slow
def test_without_key_staleness_a_new_kid_met_in_the_cooldown_is_reported() -> None:
    # The report: PyJWKClient refetches an unknown kid at most every 30 s, so a token
    # signed at once by a new key is refused; judged as if keys were refetched instantly.
    outcome = run_catalogue(
        "pyjwt", "client_credentials_rotation", examples=200, max_wait=0, key_staleness=0
    )
    assert outcome.failure is not None
    assert "[valid-token-rejected]" in outcome.failure
    # The service outlives examples: Hypothesis may shrink to an example whose own steps
    # hold no rotation, the stale key set coming from an earlier example's (the report says
    # the service kept its state). That rotations happened and refusals followed is the point.
    assert judged(outcome)["rotate_keys"]["faults"] > 0
    assert outcome.persistent


def test_the_catalogue_rotations_publish_ahead_first() -> None:
    for name in ROTATION:
        scenario = load_scenario(ROOT / "strategies" / f"{name}.py")
        assert scenario.rotation_modes[0] == "publish-ahead"
        assert scenario.policy.key_staleness >= 600  # jose's and jwks-rsa's key set max age
        assert isinstance(scenario.policy, Policy)
