"""A client's token dies under it: its access token is revoked or ends early, its whole grant
is revoked (a logout elsewhere), the token endpoint fails for a while, and requests come in
bursts while that happens.

Finds: a client that keeps presenting a dead token past the recovery window (it renews only on
its own timer, never on a 401: ``no-recovery-after-revoke``), and one whose concurrent requests
all renew at once (``refresh-storm``).

Policy assumed: a client recovers within 1 s of the API's first refusal, once the IdP answers
again; one renewal per access token. The client under test is an app (in its own process:
``jitchaos run`` gives its URL as ``--service``) that answers each route by calling the same
route on the API the proxy fronts with its token.
"""

from __future__ import annotations

from typing import ClassVar

from jitchaos import ClientChaosMachine, Policy


class Scenario(ClientChaosMachine):
    actions = frozenset({"use", "burst", "revoke", "expire", "outage", "advance"})
    outage_endpoints: ClassVar[tuple[str, ...]] = ("token",)
    policy = Policy(recovery=1)
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}}
