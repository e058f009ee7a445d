"""A machine's rules called directly, without Hypothesis: the naive fault injector of
``bench/time_to_bug.py`` (traffic with faults at a fixed random rate) and the replay of the
hand-written minimal sequences both drive a machine through :class:`Driver`.

A step is ``(rule, arguments)``; arguments name what Hypothesis would have drawn (``scopes``,
``route``, ``seconds``, ``kept``, ``endpoint``), what a rule takes directly (``user``,
``whole_grant``, ``mode``, ``n``, ``seconds`` of an outage) and which token of a bundle the rule
uses (``token``: an index into the tokens, or for ``refresh`` into the logins, held so far).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from jitchaos import ClientChaosMachine

Step = tuple[str, Mapping[str, Any]]

TRAFFIC = ("grant", "login", "refresh", "call", "advance", "use", "burst")
"""What the users of the system do (``submit_hostile`` is an attack, not traffic: left out)."""
FAULTS = ("revoke", "narrow", "expire", "rotate_keys", "outage")
"""What the injector does to credentials under the system."""
STEPS_PER_EXAMPLE = 10
"""A fresh machine (and service instance) every this many steps, as Hypothesis runs them."""


DRAWS = {
    "grant": ("scopes", "route"),
    "login": ("scopes", "route"),
    "refresh": ("route",),
    "advance": ("seconds",),
    "use": ("route",),
    "burst": ("route",),
    "narrow": ("kept",),
    "outage": ("endpoint",),
}
"""What each rule draws from ``st.data()``, in the order it draws."""


class Driver:
    """One machine instance, driven through its own replay of recorded steps
    (:meth:`~jitchaos.AuthChaosMachine.replay_step`), with the bundles Hypothesis would keep."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine
        self.client = isinstance(machine, ClientChaosMachine)

    @property
    def tokens(self) -> list[Any]:
        """Every token the machine obtained, in order (the ``tokens`` bundle)."""
        return list(self.machine.held)

    @property
    def logins(self) -> list[Any]:
        """Those that came with a refresh token (the ``logins`` bundle)."""
        return [t for t in self.machine.held if t.refresh is not None]

    def applies(self, rule: str) -> bool:
        """The machine has the rule and Hypothesis could run it now: its preconditions hold
        (the scenario's actions, a current token under a client, ...) and its bundles are not
        empty."""
        found = [r for r in type(self.machine).setup_state().rules if r.function.__name__ == rule]
        if not found:
            return False
        bundles = {"tokens": self.tokens, "logins": self.logins}
        return all(p(self.machine) for p in found[0].preconditions) and all(
            bundles[b.name] for b in found[0].bundles
        )

    def step(self, rule: str, args: Mapping[str, Any]) -> None:
        """Run ``rule`` with named arguments: what it draws, what it takes, and ``token`` as
        an index into the tokens held (for ``refresh``, into the logins)."""
        drawn = DRAWS.get(rule, ())
        taken: dict[str, Any] = {k: v for k, v in args.items() if k not in drawn}
        if "token" in taken:
            bundle = self.logins if rule == "refresh" else self.tokens
            taken["token"] = {"token": self.tokens.index(bundle[taken["token"]])}
        draws = [
            {"set": sorted(v)} if isinstance(v, frozenset | set) else v
            for v in (args[name] for name in drawn)
        ]
        self.machine.replay_step({"rule": rule, "args": taken, "draws": draws})

    def random_step(self, rng: random.Random, rate: float) -> Step:
        """A fault that applies with probability ``rate`` (else traffic), uniform among the
        rules that apply, with uniformly random arguments."""
        faults = [f for f in FAULTS if self.applies(f)]
        traffic = [t for t in TRAFFIC if self.applies(t)]
        rule = rng.choice(faults) if faults and rng.random() < rate else rng.choice(traffic)
        return rule, self._arguments(rng, rule)

    def _arguments(self, rng: random.Random, rule: str) -> dict[str, Any]:
        cls = type(self.machine)
        routes = sorted(cls.routes)
        scopes = sorted(cls.scopes)
        if rule == "grant":
            return {"scopes": _subset(rng, scopes, 1), "route": rng.choice(routes)}
        if rule == "login":
            user = rng.choice(["alice", "bob"])
            allowed = scopes if user == "alice" else [min(scopes)]
            return {"user": user, "scopes": _subset(rng, allowed, 1), "route": rng.choice(routes)}
        if rule == "refresh":
            return {"token": rng.randrange(len(self.logins)), "route": rng.choice(routes)}
        if rule in ("call", "expire") and not self.client:
            return {"token": rng.randrange(len(self.tokens))}
        if rule == "advance":
            return {"seconds": rng.randint(1, 3600)}
        if rule == "use":
            return {"route": rng.choice(routes)}
        if rule == "burst":
            return {"route": rng.choice(routes), "n": rng.randint(2, 4)}
        if rule == "revoke":
            whole = rng.random() < 0.5
            if self.client:
                return {"whole_grant": whole}
            return {"token": rng.randrange(len(self.tokens)), "whole_grant": whole}
        if rule == "narrow":
            index = rng.randrange(len(self.tokens))
            held = sorted(self.tokens[index].scopes)
            return {"token": index, "kept": _subset(rng, held, 0)}
        if rule == "rotate_keys":
            return {"mode": rng.choice(["add", "remove-old", "rekey"])}
        if rule == "outage":
            return {"endpoint": rng.choice(cls.outage_endpoints), "seconds": rng.randint(1, 120)}
        return {}  # a client's expire


def _subset(rng: random.Random, items: Sequence[str], least: int) -> frozenset[str]:
    while True:
        chosen = frozenset(i for i in items if rng.random() < 0.5)
        if len(chosen) >= least:
            return chosen


def replay(machine_cls: type[Any], steps: Sequence[Step]) -> tuple[Any, ...]:
    """Run ``steps`` on a fresh machine; the violations found after the last one."""
    driver = Driver(machine_cls())
    try:
        for rule, args in steps:
            assert driver.applies(rule), f"{rule} does not apply here"
            driver.step(rule, args)
        return tuple(driver.machine.violations())
    finally:
        driver.machine.teardown()


def naive_run(
    machine_cls: type[Any],
    seed: int,
    *,
    rate: float,
    budget: float,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float | None, int, Collection[str]]:
    """Random traffic and faults until the checker finds a violation or ``budget`` seconds
    pass: (seconds to the first violation or None, examples started, its kinds)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    started = clock()
    examples = 0
    while clock() - started < budget:
        examples += 1
        driver = Driver(machine_cls())
        try:
            for _ in range(STEPS_PER_EXAMPLE):
                driver.step(*driver.random_step(rng, rate))
                found = driver.machine.violations()
                if found:
                    return clock() - started, examples, {v.kind for v in found}
                if clock() - started >= budget:
                    break
        finally:
            driver.machine.teardown()
    return None, examples, ()
