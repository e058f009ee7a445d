"""latency: an IdP endpoint slows down.

Every request to ``endpoint`` waits ``seconds`` before it is forwarded, for ``duration``
clock seconds. Exposes timeouts shorter than a token fetch, refresh storms when a slow refresh
overlaps the next, and expiry computed after the network delay.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import ClassVar

import attrs
from hypothesis import strategies as st

from jitchaos._clock import instant
from jitchaos.faults._base import (
    Answer,
    Effect,
    Endpoint,
    EndpointWindow,
    Exchange,
    World,
    check_endpoint,
    check_seconds,
    draw_endpoints,
    draw_seconds,
)


@attrs.frozen(kw_only=True)
class Latency:
    """Delay one IdP endpoint."""

    kind: ClassVar[str] = "latency"
    summary: ClassVar[str] = "delay requests to an IdP endpoint"

    endpoint: Endpoint = attrs.field(default="token", validator=check_endpoint)
    seconds: float = attrs.field(default=1.0, validator=check_seconds)
    duration: float = attrs.field(default=30.0, validator=check_seconds)

    @classmethod
    def strategy(cls) -> st.SearchStrategy[Latency]:
        """Shrinks to no delay on the token endpoint."""
        return st.builds(
            cls, endpoint=draw_endpoints(), seconds=draw_seconds(), duration=draw_seconds()
        )

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> Latency:
        """What a seeded schedule draws."""
        return cls(endpoint=endpoint, seconds=rng.choice([0.1, 0.5, 2.0]))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        until = world.now() + self.duration
        held = min(self.seconds, world.hold_limit())
        capped = f" (held {held:g}s: the proxy's hold limit)" if held < self.seconds else ""
        return (
            f"{self.endpoint} delayed {self.seconds:g}s{capped} until {instant(until)}",
            _Slow(self, until, held),
        )


class _Slow(EndpointWindow):
    """Delays every request to the endpoint until ``until`` (clock time), and at least one,
    by the fault's seconds or the proxy's hold limit, whichever is less."""

    def __init__(self, latency: Latency, until: float, held: float) -> None:
        super().__init__(latency.endpoint, until)
        self._held = held  # real seconds: the fault's, capped by the proxy's hold limit

    def before(self, exchange: Exchange, world: World) -> Awaitable[Answer | None] | None:
        return self._wait() if self.due(exchange, world) else None

    async def _wait(self) -> None:
        await asyncio.sleep(self._held)
