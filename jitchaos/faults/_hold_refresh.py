"""hold_refresh: refresh responses wait until ``count`` refreshes are in flight.

Forces concurrent refreshes of the same refresh token, deterministically. Exposes clients whose
concurrent refreshes trip refresh-token reuse detection (and log everyone out), and refresh locks
that do not lock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import ClassVar

import attrs
from hypothesis import strategies as st

from jitchaos._checks import at_least, typed
from jitchaos.faults._base import (
    Answer,
    Effect,
    Endpoint,
    Exchange,
    World,
    check_seconds,
    draw_seconds,
)


@attrs.frozen(kw_only=True)
class HoldRefresh:
    """Hold refresh responses to force concurrency."""

    kind: ClassVar[str] = "hold_refresh"
    summary: ClassVar[str] = "hold refresh responses until N are in flight (forced concurrency)"

    count: int = attrs.field(default=2, validator=[typed(int), at_least(2)])
    timeout: float = attrs.field(default=5.0, validator=check_seconds)
    """Real seconds to wait for the others before releasing what is held."""

    @classmethod
    def strategy(cls) -> st.SearchStrategy[HoldRefresh]:
        """Shrinks to holding two refreshes with no timeout."""
        return st.builds(cls, count=st.integers(2, 8), timeout=draw_seconds())

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> HoldRefresh:
        """What a seeded schedule draws."""
        return cls(count=rng.choice([2, 3]))

    def fire(self, world: World) -> tuple[str, Effect | None]:
        return (
            f"the next {self.count} refresh requests are held until all are in flight",
            _Hold(self),
        )


class _Hold(Effect):
    """Holds refresh requests until ``count`` have arrived (or ``timeout``), then lets them all
    through together: the upstream sees truly concurrent refreshes of one refresh token."""

    def __init__(self, hold: HoldRefresh) -> None:
        self._hold = hold
        self._arrived = 0
        self._release: asyncio.Event | None = None

    def before(self, exchange: Exchange, world: World) -> Awaitable[Answer | None] | None:
        if not exchange.refresh or self._arrived >= self._hold.count:
            return None
        self._arrived += 1
        if self._arrived == self._hold.count:
            self.done = True
        return self._wait(min(self._hold.timeout, world.hold_limit()))

    async def _wait(self, limit: float) -> None:
        if self._release is None:
            self._release = asyncio.Event()
        if self._arrived >= self._hold.count:
            self._release.set()
            return
        try:
            async with asyncio.timeout(limit):
                await self._release.wait()
        except TimeoutError:
            self.done = True  # release what is held; later refreshes pass
