from __future__ import annotations

import asyncio
import datetime
import time

import jwt
import pytest

from jitchaos import (
    InvalidArgument,
    KeyRing,
    ManualClock,
    OffsetClock,
    SystemClock,
    mint_access_token,
)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=1000)
    assert clock.now() == 1000
    assert clock.advance(2.5) == 1002.5
    assert clock.set(2000) == clock.now() == 2000


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", True, 10**400])
def test_advance_refuses_bad_values(bad: object) -> None:
    clock = ManualClock(start=1000)
    with pytest.raises(InvalidArgument, match="seconds"):
        clock.advance(bad)  # type: ignore[arg-type]
    assert clock.now() == 1000


def test_the_clock_never_goes_back() -> None:
    clock = ManualClock(start=1000)
    with pytest.raises(InvalidArgument, match="before now"):
        clock.set(999)
    assert clock.now() == 1000


def test_default_start_is_the_current_second() -> None:
    assert abs(ManualClock().now() - time.time()) < 2
    assert abs(SystemClock().now() - time.time()) < 1


def test_freeze_moves_time_for_code_in_this_process() -> None:
    clock = ManualClock(start=1_700_000_000)
    key = KeyRing().current
    token = mint_access_token(
        key,
        issuer="i",
        audience="a",
        subject="s",
        client_id="c",
        scopes={"read"},
        issued_at=1_700_000_000,
        expires_at=1_700_000_060,
    )
    public = key.private_key.public_key()
    with clock.freeze():
        assert time.time() == 1_700_000_000
        assert datetime.datetime.now(datetime.UTC).timestamp() == 1_700_000_000
        # PyJWT reads the wall clock: under freeze() it reads this clock.
        jwt.decode(token, public, algorithms=["RS256"], audience="a")
        clock.advance(60)
        assert time.time() == 1_700_000_060
        with pytest.raises(jwt.ExpiredSignatureError):
            jwt.decode(token, public, algorithms=["RS256"], audience="a")
    assert abs(time.time() - 1_700_000_060) > 1000  # real time is back


def test_freeze_keeps_asyncio_on_real_time() -> None:
    clock = ManualClock(start=1_700_000_000)

    async def sleep_a_little() -> float:
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(0.01)
        return asyncio.get_running_loop().time() - started

    with clock.freeze():
        assert asyncio.run(asyncio.wait_for(sleep_a_little(), timeout=5)) > 0


def test_freeze_does_not_nest() -> None:
    clock = ManualClock()
    with clock.freeze(), pytest.raises(InvalidArgument, match="already frozen"), clock.freeze():
        pass


def test_times_past_the_year_9999_are_refused_and_change_nothing() -> None:
    """freezegun (a datetime) cannot show them: set() used to move the clock, then fail."""
    with pytest.raises(InvalidArgument, match="after the year 9999"):
        ManualClock(start=1e18)
    clock = ManualClock(start=1000)
    with clock.freeze():
        with pytest.raises(InvalidArgument, match="past the year 9999"):
            clock.advance(1e15)
        with pytest.raises(InvalidArgument, match=r"when=1000000000000000.0 is after"):
            clock.set(1e15)
        assert clock.now() == 1000
        assert time.time() == 1000
    offset = OffsetClock()
    with pytest.raises(InvalidArgument, match="after the year 9999"):
        offset.advance(1e300)
    assert offset.now() < 1e10


def test_an_instant_reads_as_iso_8601_utc_with_its_offset_from_the_start() -> None:
    from jitchaos._clock import instant

    assert instant(1796592911.3, 1796592880) == "2026-12-06T21:35:11.300Z (t+31.3 s)"
    assert instant(0.0) == "1970-01-01T00:00:00.000Z"
    assert instant(1796592870.0, 1796592880.0).endswith("(t-10.0 s)")
    assert instant(1e300) == "an instant beyond the calendar"
