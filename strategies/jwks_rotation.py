"""JWKS rotation: the IdP publishes a key ahead of signing with it (as Okta and Auth0 do), adds
one at once (an emergency), removes the old ones, or replaces the key behind a kid, while the
JWKS endpoint sometimes fails.

Finds: no refetch on an unknown kid, a key cache wiped by a failed refresh (a short outage
becomes a total one), tokens signed by a removed key still accepted past the key staleness.

Policy assumed: ``key_staleness=600``, what the common JWKS clients do with their defaults
(jose and jwks-rsa keep a key set up to 10 minutes, PyJWKClient 5, and each refetches an unknown
kid at most every 30 s); ``staleness=300``, for services that check no revocation.
"""

from __future__ import annotations

from typing import ClassVar

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"grant", "call", "advance", "rotate_keys", "outage"})
    outage_endpoints: ClassVar[tuple[str, ...]] = ("jwks",)
    policy = Policy(staleness=300, key_staleness=600)
