"""Role narrowing during a live session: users log in with a role, lose part of it while their
session lives, and keep calling (and refreshing) with the tokens they hold.

Finds: permissions cached per subject or per client (narrowing ignored, another user's
permissions served), refreshed tokens that regain a lost scope.

Policy assumed: 30 s to act on a narrowing (a permission cache of at most that); no key
rotation here. A stateless JWT service honours a token's scopes until it expires: give it
``staleness`` up to the token lifetime.
"""

from __future__ import annotations

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"login", "call", "narrow", "refresh", "advance"})
    policy = Policy(staleness=30)
