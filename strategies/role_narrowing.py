"""Role narrowing during a live session: users log in with a role, lose part of it while their
session lives, and keep calling (and refreshing) with the tokens they hold.

Finds: permissions cached per subject or per client (narrowing ignored, another user's
permissions served), refreshed tokens that regain a lost scope.
"""

from __future__ import annotations

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"login", "call", "narrow", "refresh", "advance"})
    policy = Policy(staleness=30)
