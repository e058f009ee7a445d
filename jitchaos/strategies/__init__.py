"""Hypothesis strategies for the auth world: scopes, claims and faults (more arrive with the
hostile-token catalogue, schedules and policies)."""

from jitchaos.strategies._claims import claims, scopes
from jitchaos.strategies._faults import faults

__all__ = ["claims", "faults", "scopes"]
