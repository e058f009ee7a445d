"""Client-credentials rotation: a backend client re-grants short-lived tokens while the IdP
rotates its signing keys and ends tokens early.

Finds: a JWKS cache that never refetches on an unknown kid (the next token after a rotation is
refused), revocations and early expiries honoured late, tokens accepted after ``exp``.
"""

from __future__ import annotations

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"grant", "call", "advance", "rotate_keys", "revoke", "expire"})
    policy = Policy(staleness=30, key_staleness=0)
