"""Executes a schedule: counts requests and steps, fires triggers, keeps fault effects acting.

The engine is the only place faults come from while a test drives the proxy, and it draws no
random numbers: what fires, and when, follows from the schedule, the clock and the traffic.
"""

from __future__ import annotations

import heapq
import inspect
import threading
from collections import Counter
from collections.abc import Callable

from jitchaos._clock import Clock
from jitchaos._history import AppliedFault, History
from jitchaos._schedule import AtStep, OnEvent, OnRequest, Schedule, Scheduled
from jitchaos.errors import InvalidArgument, LedgerError
from jitchaos.faults import Answer, AnyFault, Effect, Exchange, Issue, NotApplicable, World

__all__ = ["FaultEngine"]


class FaultEngine:
    """Fires a schedule's faults against a :class:`World` and records each in the history."""

    def __init__(
        self,
        world: World,
        clock: Clock,
        history: History,
        *,
        on_fired: Callable[[AppliedFault], None] = lambda applied: None,
    ) -> None:
        self._world = world
        self._clock = clock
        self._history = history
        self._on_fired = on_fired
        self._lock = threading.RLock()
        self._schedule = Schedule()
        # Pending entries by position, and indexes by trigger, so that a schedule of tens of
        # thousands of entries costs a dictionary lookup per request, not a scan.
        self._pending: dict[int, Scheduled] = {}
        self._by_request: dict[tuple[str, int], list[int]] = {}
        self._by_step: dict[int, list[int]] = {}
        self._by_event: dict[str, list[int]] = {}
        self._by_time: list[tuple[float, int]] = []
        self._counts: Counter[str] = Counter()
        self._events: set[str] = set()
        self._step = 0
        self._effects: list[tuple[Effect, AppliedFault]] = []

    # What the driver does.

    @property
    def schedule(self) -> Schedule:
        return self._schedule

    @property
    def step(self) -> int:
        return self._step

    @property
    def pending(self) -> tuple[Scheduled, ...]:
        """Entries of the loaded schedule that have not fired yet."""
        with self._lock:
            return tuple(self._pending.values())

    def load(self, schedule: Schedule) -> None:
        """Replace the schedule; step and request counts start again from zero."""
        if not isinstance(schedule, Schedule):
            raise InvalidArgument(f"schedule={schedule!r} must be a Schedule")
        with self._lock:
            self._schedule = schedule
            self._pending = dict(enumerate(schedule.entries))
            self._by_request, self._by_step, self._by_event = {}, {}, {}
            self._by_time = []
            for index, entry in self._pending.items():
                trigger = entry.trigger
                if isinstance(trigger, OnRequest):
                    self._by_request.setdefault((trigger.endpoint, trigger.n), []).append(index)
                elif isinstance(trigger, AtStep):
                    self._by_step.setdefault(trigger.step, []).append(index)
                elif isinstance(trigger, OnEvent):
                    self._by_event.setdefault(trigger.event, []).append(index)
                else:
                    self._by_time.append((trigger.at, index))
            heapq.heapify(self._by_time)
            self._counts.clear()
            self._events.clear()
            self._step = 0
        self.tick()

    def reset(self) -> None:
        """Forget the schedule and every lasting effect."""
        with self._lock:
            self._effects.clear()
        self.load(Schedule())

    def apply(self, fault: AnyFault) -> AppliedFault:
        """Fire ``fault`` now, outside any schedule."""
        return self._fire(fault, "now")

    def advance_step(self) -> tuple[AppliedFault, ...]:
        """The driver took one more step; fire what waits for it."""
        with self._lock:
            self._step += 1
            fired = self._fire_indices(self._by_step.pop(self._step, []))
        return fired + self.tick()

    def tick(self) -> tuple[AppliedFault, ...]:
        """Fire what waits for the current clock time."""
        if not self._by_time:
            return ()
        now = self._clock.now()
        with self._lock:
            due = []
            while self._by_time and self._by_time[0][0] <= now:
                due.append(heapq.heappop(self._by_time)[1])
            return self._fire_indices(due)

    # What the traffic does.

    def request(self, endpoint: str) -> tuple[AppliedFault, ...]:
        """One more request to an IdP ``endpoint``."""
        with self._lock:
            self._counts[endpoint] += 1
            fired = self._fire_indices(
                self._by_request.pop((endpoint, self._counts[endpoint]), [])
            )
        return fired + self.tick()

    def event(self, name: str) -> tuple[AppliedFault, ...]:
        """Something happened (``first-use``, ``first-grant``, ``first-refresh``)."""
        with self._lock:
            if name in self._events:
                return ()
            self._events.add(name)
            return self._fire_indices(self._by_event.pop(name, []))

    async def before(self, exchange: Exchange) -> Answer | None:
        """Let lasting effects delay, hold or answer an IdP request before it is forwarded."""
        if not self._effects:  # the common case, without taking the lock
            return None
        for effect, _ in self._live():
            waiting = effect.before(exchange, self._world)
            if waiting is None:
                continue
            answer = await waiting if inspect.isawaitable(waiting) else waiting
            if answer is not None:
                return answer
        return None

    def edit_issue(self, issue: Issue, *, editable: bool, why_not: str = "") -> None:
        """Let effects edit the access token being issued; when it cannot be changed, the
        effects that wanted to are used up and recorded as not applied."""
        if not self._effects:
            return
        for effect, source in self._live():
            if editable:
                effect.on_issue(issue)
                continue
            probe = Issue(
                issued_at=issue.issued_at,
                not_before=issue.not_before,
                expires_at=issue.expires_at,
                scopes=issue.scopes,
            )
            if effect.on_issue(probe):
                self._follow_up(source, applied=False, detail=why_not)

    def offer_token(self, fingerprint: str) -> None:
        """A request carried, or was just issued, this token: effects waiting for one act."""
        if not self._effects:
            return
        for effect, source in self._live():
            try:
                detail = effect.on_token(fingerprint, self._world)
            except (NotApplicable, LedgerError, InvalidArgument) as error:
                effect.done = True
                self._follow_up(source, applied=False, detail=str(error))
                continue
            if detail is not None:
                self._follow_up(source, applied=True, detail=detail)

    # Inside.

    def _live(self) -> list[tuple[Effect, AppliedFault]]:
        with self._lock:
            self._effects = [(e, s) for e, s in self._effects if not e.done]
            return list(self._effects)

    def _fire_indices(self, indices: list[int]) -> tuple[AppliedFault, ...]:
        """Fire the pending entries at these positions, in schedule order."""
        with self._lock:
            firing = [self._pending.pop(i) for i in sorted(indices) if i in self._pending]
            return tuple(self._fire(entry.fault, repr(entry.trigger)) for entry in firing)

    def _fire(self, fault: AnyFault, trigger: str) -> AppliedFault:
        with self._lock:
            ledger = getattr(self._world, "ledger", None)
            first = ledger.seq if ledger is not None else None
            try:
                detail, effect = fault.fire(self._world)
                applied = True
            except (NotApplicable, LedgerError, InvalidArgument) as error:
                detail, effect, applied = str(error), None, False
            record = self._history.fault(
                at=self._clock.now(),
                step=self._step,
                fault=fault,
                trigger=trigger,
                applied=applied,
                detail=detail,
                ledger_span=(first, ledger.seq)
                if ledger is not None and first is not None
                else None,
            )
            if effect is not None:
                self._effects.append((effect, record))
        self._on_fired(record)
        return record

    def _follow_up(self, source: AppliedFault, *, applied: bool, detail: str) -> None:
        self._history.fault(
            at=self._clock.now(),
            step=self._step,
            fault=source.fault,
            trigger=f"effect of #{source.seq}",
            applied=applied,
            detail=detail,
        )
