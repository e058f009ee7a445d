"""Refresh-token rotation with reuse detection: users log in, refresh (each refresh token is
spent once), and sometimes a refresh token is presented twice, after which the IdP revokes the
whole grant, so every token of that session must stop working.

Finds: a service that keeps honouring the tokens of a grant revoked for reuse (a cache keyed by
subject or by token that outlives the policy), refresh tokens accepted as access tokens.

Policy assumed: 30 s to act on a revocation (an introspection or permission cache of at most
that); no key rotation here. A service that checks no revocation (stateless JWTs) promises
less: give it ``staleness`` up to the token lifetime.
"""

from __future__ import annotations

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"login", "refresh", "call", "advance", "revoke"})
    policy = Policy(staleness=30)
