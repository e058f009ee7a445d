"""expire: tokens die before the client expects.

With ``issued_ttl``, tokens issued while the fault is active get that lifetime (``exp`` and
``expires_in`` shortened); without it, the targeted live tokens become expired at once:
introspection answers inactive and their refresh tokens give ``invalid_grant``. Exposes clients
that refresh only on their own timer and never on a 401, and caches that outlive a token.
"""

from __future__ import annotations

import random
from typing import ClassVar

import attrs
from hypothesis import strategies as st

from jitchaos._checks import at_least, typed
from jitchaos.faults._base import (
    Effect,
    Endpoint,
    Issue,
    OnNextToken,
    World,
    check_target,
    draw_targets,
)


@attrs.frozen(kw_only=True)
class Expire:
    """Shorten tokens being issued, or make live tokens expired now."""

    kind: ClassVar[str] = "expire"
    summary: ClassVar[str] = "shorten exp of issued tokens, or expire live tokens now"

    target: str = attrs.field(default="request", validator=check_target)
    """Which live tokens expire (ignored when ``issued_ttl`` is set)."""
    issued_ttl: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional([typed(int), at_least(1)]),
    )
    """Lifetime in seconds of tokens issued while active; None expires live tokens instead."""

    @classmethod
    def strategy(cls) -> st.SearchStrategy[Expire]:
        """Either shape; shrinks to the next token seen expiring, target ``request``."""
        return st.builds(cls, target=draw_targets(), issued_ttl=st.none() | st.integers(1, 3600))

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> Expire:
        """What a seeded schedule draws."""
        return cls(issued_ttl=rng.choice([None, 5, 30]))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        if self.issued_ttl is not None:
            return f"the next access token issued lives {self.issued_ttl}s", _ShortLife(
                self.issued_ttl
            )
        if self.target == "request":
            return "the next token seen expires", OnNextToken(world.expire)
        return world.expire(self.target), None


class _ShortLife(Effect):
    def __init__(self, ttl: int) -> None:
        self._ttl = ttl

    def on_issue(self, issue: Issue) -> bool:
        issue.expires_at = min(issue.expires_at, issue.issued_at + self._ttl)
        self.done = True
        return True
