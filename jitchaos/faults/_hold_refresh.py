"""hold_refresh: refresh responses wait until ``count`` refreshes are in flight.

Forces concurrent refreshes of the same refresh token, deterministically. Exposes clients whose
concurrent refreshes trip refresh-token reuse detection (and log everyone out), and refresh locks
that do not lock.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from jitchaos.faults._base import check_seconds


@attrs.frozen(kw_only=True)
class HoldRefresh:
    """Hold refresh responses to force concurrency."""

    kind: ClassVar[str] = "hold_refresh"
    summary: ClassVar[str] = "hold refresh responses until N are in flight (forced concurrency)"

    count: int = attrs.field(
        default=2, validator=[attrs.validators.instance_of(int), attrs.validators.ge(2)]
    )
    timeout: float = attrs.field(default=5.0, validator=check_seconds)
    """Real seconds to wait for the others before releasing what is held."""
