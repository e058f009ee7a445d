"""JWKS rotation: the IdP adds a key and signs with it, removes the old one, or replaces the key
behind a kid, while the JWKS endpoint sometimes fails.

Finds: no refetch on an unknown kid, a key cache wiped by a failed refresh (a short outage
becomes a total one), tokens signed by a removed key still accepted.
"""

from __future__ import annotations

from typing import ClassVar

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"grant", "call", "advance", "rotate_keys", "outage"})
    outage_endpoints: ClassVar[tuple[str, ...]] = ("jwks",)
    policy = Policy(staleness=300, key_staleness=0)
