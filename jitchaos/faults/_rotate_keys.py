"""rotate_keys: the IdP's signing key changes under the services.

``add`` publishes a new kid and signs with it; ``remove-old`` withdraws every earlier key (tokens
they signed stop verifying); ``rekey`` keeps the kid but swaps the key behind it. Exposes JWKS
caches that never refetch on an unknown kid, and caches that keep trusting a removed key.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from jitchaos.faults._base import Effect, World, one_of


@attrs.frozen(kw_only=True)
class RotateKeys:
    """Change the signing keys."""

    kind: ClassVar[str] = "rotate_keys"
    summary: ClassVar[str] = "add a kid and sign with it, remove old kids, or rekey a kid"

    mode: Literal["add", "remove-old", "rekey"] = attrs.field(
        default="add", validator=one_of("add", "remove-old", "rekey")
    )

    def fire(self, world: World) -> tuple[str, Effect | None]:
        return world.rotate_keys(self.mode), None
