"""Hypothesis strategies for the auth world: scopes and claims (more arrive with the hostile-token
catalogue, faults and schedules)."""

from jitchaos.strategies._claims import claims, scopes

__all__ = ["claims", "scopes"]
