"""Client-credentials rotation: a backend client re-grants short-lived tokens while the IdP
rotates its signing keys (publishing each new key ahead of signing with it, as Okta and Auth0
do, or at once in an emergency) and ends tokens early.

Finds: a JWKS cache that never refetches on an unknown kid (the next token after a rotation is
refused for good), a removed key still trusted past the key staleness, revocations and early
expiries honoured late, tokens accepted after ``exp``.

Policy assumed: 30 s to act on a revocation or early expiry; ``key_staleness=600``, what the
common JWKS clients do with their defaults (jose and jwks-rsa keep a key set up to 10 minutes,
PyJWKClient 5, and each refetches an unknown kid at most every 30 s). A service that checks no
revocation (stateless JWTs) promises less: give it ``staleness`` up to the token lifetime.
"""

from __future__ import annotations

from jitchaos import AuthChaosMachine, Policy


class Scenario(AuthChaosMachine):
    actions = frozenset({"grant", "call", "advance", "rotate_keys", "revoke", "expire"})
    policy = Policy(staleness=30, key_staleness=600)
