"""narrow: a role change takes scopes away from a live grant.

The grant's scopes become ``scopes`` (intersected with what it had): at issue, refresh and
introspection, and ``roles``/``groups`` claims are dropped. Exposes permission caches keyed by
subject (narrowed-scope-honoured) and clients that choke on a token response whose scope differs
from the request.
"""

from __future__ import annotations

import random
from typing import ClassVar

import attrs
from hypothesis import strategies as st

from jitchaos.errors import InvalidArgument
from jitchaos.faults._base import (
    Effect,
    Endpoint,
    Issue,
    World,
    check_target,
    draw_scope_names,
    draw_targets,
)


def _scopes(value: object) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, frozenset | set | list | tuple):
        raise InvalidArgument(f"scopes={value!r} must be a collection of scope names")
    if not all(isinstance(scope, str) and scope and " " not in scope for scope in value):
        raise InvalidArgument(f"scopes={value!r} must hold non-empty scope names without spaces")
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Narrow:
    """Reduce the target grant's scopes."""

    kind: ClassVar[str] = "narrow"
    summary: ClassVar[str] = "reduce the scopes of a live grant (roles and groups dropped)"

    scopes: frozenset[str] = attrs.field(factory=frozenset, converter=_scopes)
    """What the grant keeps (intersected with what it had); empty keeps nothing."""
    target: str = attrs.field(default="request", validator=check_target)

    @classmethod
    def strategy(cls) -> st.SearchStrategy[Narrow]:
        """Shrinks to narrowing the request's grant to no scope."""
        return st.builds(
            cls, scopes=st.frozensets(draw_scope_names(), max_size=3), target=draw_targets()
        )

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> Narrow:
        """What a seeded schedule draws."""
        return cls(scopes=frozenset(rng.sample(["read", "write"], rng.randint(0, 1))))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        if self.target == "request":
            return "the next token issued or seen is narrowed", _NarrowNext(self.scopes)
        return world.narrow(self.target, self.scopes), None


class _NarrowNext(Effect):
    """At issue: the token carries fewer scopes; on a live token: its grant is narrowed."""

    def __init__(self, scopes: frozenset[str]) -> None:
        self._scopes = scopes

    def on_issue(self, issue: Issue) -> bool:
        issue.scopes &= self._scopes
        issue.drop_roles = True
        self.done = True
        return True

    def on_token(self, fingerprint: str, world: World) -> str | None:
        self.done = True
        return world.narrow(f"token:{fingerprint}", self._scopes)
