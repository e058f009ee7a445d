"""IdP outage during refresh: the token, introspection and JWKS endpoints fail for a while
exactly when sessions refresh and tokens are checked.

Finds: a service that turns a transient IdP error into a 401 for a valid token (logging users
out), or that serves stale permissions during the outage beyond its policy.

Policy assumed: 30 s of staleness; a correct service answers 5xx, not 401, when it cannot reach
the IdP (the checker judges no 5xx); no key rotation here.
"""

from __future__ import annotations

from typing import ClassVar

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"login", "refresh", "call", "advance", "outage"})
    outage_endpoints: ClassVar[tuple[str, ...]] = ("token", "introspection", "jwks")
    policy = Policy(staleness=30)
