"""revoke: a token, a refresh-token family or a principal loses access mid-session.

With ``delay``, the IdP acknowledges the revocation at once but honours it only ``delay``
seconds later (propagation delay). Exposes services that trust a JWT until ``exp`` or cache
introspection longer than their policy allows (revoked-token-accepted), and clients that never
fetch a fresh token after a 401 (no-recovery-after-revoke).
"""

from __future__ import annotations

import random
from typing import ClassVar

import attrs
from hypothesis import strategies as st

from jitchaos.faults._base import (
    Effect,
    Endpoint,
    OnNextToken,
    World,
    check_seconds,
    check_target,
    draw_seconds,
    draw_targets,
)


@attrs.frozen(kw_only=True)
class Revoke:
    """Revoke the target's tokens."""

    kind: ClassVar[str] = "revoke"
    summary: ClassVar[str] = "revoke a token, a refresh family or a principal (optional delay)"

    target: str = attrs.field(default="request", validator=check_target)
    delay: float = attrs.field(default=0.0, validator=check_seconds)
    """Seconds between acknowledging the revocation and honouring it."""

    @classmethod
    def strategy(cls) -> st.SearchStrategy[Revoke]:
        """Shrinks to an immediate revocation of the request's token."""
        return st.builds(cls, target=draw_targets(), delay=draw_seconds())

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> Revoke:
        """What a seeded schedule draws."""
        return cls(delay=rng.choice([0.0, 0.0, 5.0]))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        if self.target == "request":
            delay = self.delay
            return "the next token seen is revoked", OnNextToken(
                lambda target: world.revoke(target, delay=delay)
            )
        return world.revoke(self.target, delay=self.delay), None
