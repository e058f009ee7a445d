"""latency: an IdP endpoint slows down.

Every request to ``endpoint`` waits ``seconds`` before it is forwarded, for ``duration``
clock seconds. Exposes timeouts shorter than a token fetch, refresh storms when a slow refresh
overlaps the next, and expiry computed after the network delay.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from jitchaos.faults._base import Endpoint, check_endpoint, check_seconds


@attrs.frozen(kw_only=True)
class Latency:
    """Delay one IdP endpoint."""

    kind: ClassVar[str] = "latency"
    summary: ClassVar[str] = "delay requests to an IdP endpoint"

    endpoint: Endpoint = attrs.field(default="token", validator=check_endpoint)
    seconds: float = attrs.field(default=1.0, validator=check_seconds)
    duration: float = attrs.field(default=30.0, validator=check_seconds)
