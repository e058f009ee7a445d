"""outage: an IdP endpoint fails for a while.

For ``duration`` seconds the endpoint answers 5xx, times out, returns malformed JSON, or (JWKS)
an empty key set. Exposes key caches wiped by a failed refresh (a short outage becomes total),
cached errors that outlive the outage, and clients that log users out on a transient error.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

from jitchaos.faults._base import Endpoint, check_endpoint, check_seconds, one_of


@attrs.frozen(kw_only=True)
class Outage:
    """Make one IdP endpoint fail."""

    kind: ClassVar[str] = "outage"
    summary: ClassVar[str] = "an IdP endpoint answers 5xx, times out, or returns bad JSON"

    endpoint: Endpoint = attrs.field(default="token", validator=check_endpoint)
    mode: Literal["5xx", "timeout", "malformed", "empty-keys"] = attrs.field(
        default="5xx", validator=one_of("5xx", "timeout", "malformed", "empty-keys")
    )
    duration: float = attrs.field(default=30.0, validator=check_seconds)
    """How long the outage lasts, in clock seconds."""
