"""rotate_keys: the IdP's signing key changes under the services.

``publish-ahead`` publishes a new kid and signs with it ``ahead`` seconds later, as Okta and
Auth0 rotate: a key cache that refreshes within that time never meets an unknown kid. ``add``
publishes a new kid and signs with it at once (an emergency rotation); ``remove-old`` withdraws
every earlier key (tokens they signed stop verifying); ``rekey`` keeps the kid but swaps the key
behind it (a botched rotation). Exposes JWKS caches that never refetch on an unknown kid,
caches wiped or never refreshed, and caches that keep trusting a removed key.
"""

from __future__ import annotations

import random
from typing import ClassVar, Literal

import attrs
from hypothesis import strategies as st

from jitchaos._checks import check_seconds
from jitchaos.faults._base import Effect, Endpoint, World, one_of

MODES = ("publish-ahead", "add", "remove-old", "rekey")


@attrs.frozen(kw_only=True)
class RotateKeys:
    """Change the signing keys."""

    kind: ClassVar[str] = "rotate_keys"
    summary: ClassVar[str] = (
        "publish a kid ahead of signing with it, add one at once, remove old kids, or rekey a kid"
    )

    mode: Literal["publish-ahead", "add", "remove-old", "rekey"] = attrs.field(
        default="add", validator=one_of(*MODES)
    )
    ahead: float = attrs.field(default=60.0, validator=check_seconds)
    """``publish-ahead``: seconds between publishing the key and signing with it."""

    @classmethod
    def strategy(cls) -> st.SearchStrategy[RotateKeys]:
        """Shrinks to publishing a key ahead by 0 s."""
        return st.builds(cls, mode=st.sampled_from(MODES), ahead=st.integers(0, 3600).map(float))

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> RotateKeys:
        """What a seeded schedule draws."""
        return cls(mode=rng.choice(["add", "add", "remove-old", "rekey"]))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        return world.rotate_keys(self.mode, self.ahead), None
