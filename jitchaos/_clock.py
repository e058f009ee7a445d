"""One notion of "now" for the IdP, the proxy and the ledger.

Tokens expire because a clock says so, not because a test slept. A :class:`ManualClock` moves
only when told to; :meth:`ManualClock.freeze` also moves ``time.time()`` and ``datetime.now()``
for code running in the test process (through freezegun, with ``real_asyncio=True`` so event
loops keep real monotonic time and ``asyncio.sleep`` still returns). Services in other processes
read real time; for them use :class:`SystemClock` and short real TTLs.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from jitchaos._checks import is_finite
from jitchaos.errors import InvalidArgument

__all__ = ["Clock", "ManualClock", "OffsetClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the current time as POSIX seconds."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class SystemClock:
    """The wall clock, for services that run in other processes and see real time."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class OffsetClock:
    """The wall clock plus an offset that only grows: time flows, and a driver may jump it.

    For a standalone proxy in front of staging: tokens age in real time, and the control API
    can still move "now" forward (tokens the IdP issued expire at once for the ledger and the
    IdP; services in other processes keep reading their own clocks).
    """

    def __init__(self, offset: float = 0.0) -> None:
        _check_time("offset", offset)
        self._offset = float(offset)
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Jump forward by ``seconds`` (>= 0) and return the new time."""
        _check_time("seconds", seconds)
        _check_time("the time it moves to", self.now() + seconds)
        with self._lock:
            self._offset += seconds
        return self.now()

    def set(self, when: float) -> float:
        """Jump to ``when``, which may not be earlier than now."""
        _check_time("when", when)
        with self._lock:
            now = self.now()
            if when < now:
                raise InvalidArgument(
                    f"when={when!r} is before now ({now!r}); the clock never goes back"
                )
            self._offset += when - now
        return self.now()

    def __repr__(self) -> str:
        return f"OffsetClock(offset={self._offset!r})"


class ManualClock:
    """A clock that moves only when a test moves it.

    ``start`` defaults to the current wall-clock second, so tokens minted on it also look
    plausible to code that reads real time until the clock is moved.
    """

    def __init__(self, start: float | None = None) -> None:
        if start is None:
            start = float(int(time.time()))
        _check_time("start", start)
        self._now = float(start)
        self._lock = threading.Lock()
        self._frozen: Any = None  # freezegun's time factory while frozen

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not is_finite(seconds)
            or seconds < 0
        ):
            raise InvalidArgument(
                f"seconds={seconds!r} must be a finite number >= 0; the clock never goes back"
            )
        if self._now + seconds > _LATEST:
            raise InvalidArgument(
                f"seconds={seconds!r} would move the clock past the year 9999, the last time "
                "a clock here can show"
            )
        return self.set(self._now + seconds)

    def set(self, when: float) -> float:
        """Move the clock to ``when``, which may not be earlier than now."""
        _check_time("when", when)
        with self._lock:
            if when < self._now:
                raise InvalidArgument(
                    f"when={when!r} is before now ({self._now!r}); the clock never goes back"
                )
            if self._frozen is not None:  # moved first: if it fails, nothing has changed
                self._frozen.move_to(_as_datetime(when))
            self._now = float(when)
        return self._now

    @contextmanager
    def freeze(self) -> Iterator[ManualClock]:
        """Make ``time.time()`` and ``datetime.now()`` in this process follow this clock.

        Inside the block, moving the clock also moves freezegun's frozen time, so a service or
        client library running in the test process sees a token expire the moment the clock
        passes its ``exp``. Event loops keep real monotonic time (``real_asyncio=True``).
        """
        import freezegun  # imported here: freezegun patches modules only when started

        if self._frozen is not None:
            raise InvalidArgument("this clock is already frozen; freeze() does not nest")
        with freezegun.freeze_time(_as_datetime(self._now), real_asyncio=True) as frozen:
            self._frozen = frozen
            try:
                yield self
            finally:
                self._frozen = None

    def __repr__(self) -> str:
        return f"ManualClock(start={self._now!r})"


_LATEST = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the last second a datetime (and so freezegun) can show."""


def _check_time(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not is_finite(value)
        or value < 0
    ):
        raise InvalidArgument(f"{name}={value!r} must be a finite number of seconds >= 0")
    if value > _LATEST:
        raise InvalidArgument(
            f"{name}={value!r} is after the year 9999, the last time a clock here can show"
        )


def _as_datetime(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def instant(at: float, origin: float | None = None) -> str:
    """An instant as people read it: ISO 8601 UTC to the millisecond, with its offset from the
    run's start when ``origin`` is given: ``2026-12-05T08:02:17.300Z (t+31.0 s)``. Never
    ``%g``, which prints ``1.79646e+09``."""
    try:
        when = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "an instant beyond the calendar"  # no year holds it; never an exponent
    text = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    if origin is None or not is_finite(origin):
        return text
    return f"{text} (t{at - origin:+.1f} s)"
