"""clock_skew: the IdP's clock disagrees with the services'.

Tokens issued while active carry ``iat``/``nbf`` shifted by ``seconds`` (positive: in the future)
and, with ``exp_at_leeway``, an ``exp`` exactly at the policy's leeway boundary. Exposes skew
applied with the wrong sign and ``nbf`` rounding mismatches ("JWT not active yet").
"""

from __future__ import annotations

import random
from typing import ClassVar

import attrs
from hypothesis import strategies as st

from jitchaos._checks import finite_number, typed
from jitchaos.errors import InvalidArgument
from jitchaos.faults._base import Effect, Endpoint, Issue, World

_MAX_SKEW = 366 * 86400.0  # beyond a year it is not a skew; past ~1e16 float times lose exp


def _finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    must = f"a finite number of seconds, at most a year either way ({_MAX_SKEW:g})"
    finite_number(attribute.name, value, minimum=-_MAX_SKEW, must=must)
    if value > _MAX_SKEW:
        raise InvalidArgument(f"{attribute.name}={value!r} must be {must}")


@attrs.frozen(kw_only=True)
class ClockSkew:
    """Shift the time claims of tokens being issued."""

    kind: ClassVar[str] = "clock_skew"
    summary: ClassVar[str] = "iat/nbf in the future or exp at the leeway boundary"

    seconds: float = attrs.field(default=5.0, validator=_finite)
    exp_at_leeway: bool = attrs.field(default=False, validator=typed(bool))

    @classmethod
    def strategy(cls) -> st.SearchStrategy[ClockSkew]:
        """Shrinks to no skew."""
        return st.builds(
            cls, seconds=st.integers(-300, 300).map(float), exp_at_leeway=st.booleans()
        )

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> ClockSkew:
        """What a seeded schedule draws."""
        return cls(seconds=float(rng.choice([-30, -2, 2, 30])))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        if self.exp_at_leeway:
            said = f"the next access token arrives expired by exactly {abs(self.seconds):g}s"
        else:
            said = f"the next access token's iat/nbf/exp are shifted by {self.seconds:+g}s"
        return said, _Skewed(self, world.now())


class _Skewed(Effect):
    def __init__(self, skew: ClockSkew, now: float) -> None:
        self._skew = skew
        self._now = now

    def on_issue(self, issue: Issue) -> bool:
        lifetime = issue.expires_at - issue.not_before
        if self._skew.exp_at_leeway:
            # Already expired by exactly the skew: accepted only with leeway >= |seconds|.
            issue.expires_at = int(self._now - abs(self._skew.seconds))
            issue.issued_at = issue.not_before = issue.expires_at - lifetime
        else:
            shift = int(self._skew.seconds)
            issue.issued_at += shift
            issue.not_before += shift
            issue.expires_at += shift
        self.done = True
        return True
