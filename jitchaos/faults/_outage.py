"""outage: an IdP endpoint fails for a while.

For ``duration`` seconds the endpoint answers 5xx, times out, returns malformed JSON, or (JWKS)
an empty key set. Exposes key caches wiped by a failed refresh (a short outage becomes total),
cached errors that outlive the outage, and clients that log users out on a transient error.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import ClassVar, Literal

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
    json_body,
    one_of,
)


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

    @classmethod
    def strategy(cls) -> st.SearchStrategy[Outage]:
        """Shrinks to a 0 s 5xx outage of the token endpoint."""
        return st.builds(
            cls,
            endpoint=draw_endpoints(),
            mode=st.sampled_from(["5xx", "timeout", "malformed", "empty-keys"]),
            duration=draw_seconds(),
        )

    @classmethod
    def seeded(cls, rng: random.Random, endpoint: Endpoint) -> Outage:
        """What a seeded schedule draws."""
        return cls(
            endpoint=endpoint,
            mode=rng.choice(["5xx", "timeout", "malformed"]),
            duration=float(rng.choice([5, 30, 120])),
        )

    def fire(self, world: World) -> tuple[str, Effect | None]:
        until = world.now() + self.duration
        return (
            f"{self.endpoint} fails ({self.mode}) until {instant(until)}",
            _Failing(self, until),
        )


class _Failing(EndpointWindow):
    """Fails every request to the endpoint until ``until`` (clock time), and at least one."""

    def __init__(self, outage: Outage, until: float) -> None:
        super().__init__(outage.endpoint, until)
        self._outage = outage

    def before(self, exchange: Exchange, world: World) -> Awaitable[Answer | None] | None:
        return self._answer(world) if self.due(exchange, world) else None

    async def _answer(self, world: World) -> Answer:
        mode = self._outage.mode
        said = f"jitchaos outage ({mode}) on the {self._outage.endpoint} endpoint"
        if mode == "timeout":
            # Hold the request as a dead IdP would; the client's own timeout should fire first.
            await asyncio.sleep(min(self._outage.duration, world.hold_limit()))
            return Answer(504, json_body(error="temporarily_unavailable", error_description=said))
        if mode == "malformed":
            return Answer(200, b'{"keys": [{"kty": "RSA", "n": ')
        if mode == "empty-keys":
            return Answer(200, b'{"keys": []}' if self._outage.endpoint == "jwks" else b"{}")
        return Answer(503, json_body(error="temporarily_unavailable", error_description=said))
