"""The stateful layer: RuleBasedStateMachines that change credentials under a running system.

:class:`AuthChaosMachine` tests a *service* (a resource server): rules grant tokens (client
credentials, or a user's login with a refresh token), call the service's routes with them,
refresh, revoke, narrow and expire them, move the clock, rotate keys, take an IdP endpoint down,
and submit hostile tokens. :class:`ClientChaosMachine` tests a *client* (an app that holds tokens
and calls a downstream API): rules use it, burst concurrent requests into it, and expire or
revoke its tokens under it. The invariant of both is that the checker finds no violation;
Hypothesis shrinks any failure to the shortest sequence of steps that shows it. Every fault comes
from a rule, never from the proxy's own dice, so shrinking and replay are sound.

One event loop on a background thread keeps the embedded IdP and the proxy alive across steps
and examples (rules stay synchronous: Hypothesis has no async rules, its issue 4107); each
example gets a fresh service instance, so no cache survives from one example into the next.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import threading
import time
import unittest
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ClassVar

import jwt
from aiohttp import web
from hypothesis import HealthCheck, reject
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
)

from jitchaos import _runner
from jitchaos._checker import Forged, Violation, check
from jitchaos._checks import address, route_scopes, scope_names
from jitchaos._clock import ManualClock, OffsetClock
from jitchaos._failure import Failure, Found, Step, describe_service
from jitchaos._oauth_client import Connections, authorization_query, code_from, exchange
from jitchaos._policy import Policy
from jitchaos._records import Granted, TokenKind
from jitchaos._reference import reference_service
from jitchaos._report import RunReport, report
from jitchaos._runner import RUNS
from jitchaos._steps import _Draws, _Replayed, _Token
from jitchaos._tokens import fingerprint
from jitchaos._worlds import (
    _REDIRECT,
    TestClient,
    Wiring,
    _basic,
    _StagingWorld,
    _World,
)
from jitchaos.errors import InvalidArgument
from jitchaos.faults import Expire, Narrow, Outage, Revoke, RotateKeys

__all__ = [
    "ACTIONS",
    "AuthChaosMachine",
    "ClientChaosMachine",
    "ServiceFactory",
    "ViolationFound",
    "violation_error",
]

ServiceFactory = Callable[..., web.Application]
"""``factory(idp_url=..., issuer=..., now=...)`` -> the service's aiohttp application."""

ACTIONS = frozenset(
    {
        "grant",
        "login",
        "refresh",
        "call",
        "revoke",
        "narrow",
        "expire",
        "advance",
        "rotate_keys",
        "outage",
        "submit_hostile",
        "use",
        "burst",
    }
)
"""The rules a machine may run; a machine's ``actions`` picks some (a scenario)."""


class _TestCase:
    """``Machine.TestCase``: what pytest and unittest collect. Like Hypothesis's own, plus a
    repro notebook for a failure, in ``$JITCHAOS_NOTEBOOKS`` (default ``notebooks``; empty
    for none) or the test case's ``notebooks`` attribute."""

    def __get__(self, instance: object, owner: type[_ChaosMachine]) -> type[unittest.TestCase]:
        machine = owner

        class StateMachineTestCase(unittest.TestCase):
            settings: ClassVar[Settings] = Settings(
                deadline=None, suppress_health_check=list(HealthCheck)
            )
            notebooks: ClassVar[str | None] = (
                os.environ.get("JITCHAOS_NOTEBOOKS", "notebooks") or None
            )

            def runTest(self) -> None:
                machine.run(settings=self.settings, notebooks=self.notebooks)

        StateMachineTestCase.__name__ = f"{owner.__name__}.TestCase"
        StateMachineTestCase.__qualname__ = f"{owner.__qualname__}.TestCase"
        return StateMachineTestCase


def _action(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the rule only when the machine's ``actions`` include it."""
    return precondition(lambda self: name in self._actions)


class ViolationFound(AssertionError):
    """A machine's invariant failed: the checker found a violation. Each violation kind (and
    each attack class of a hostile token accepted) raises its own subclass, so that Hypothesis
    tells them apart as distinct failures (it tells failures apart by exception type and
    place) and shrinks and reports each one."""

    kind: ClassVar[str] = ""


_VIOLATION_ERRORS: dict[str, type[ViolationFound]] = {}


def violation_error(kind: str) -> type[ViolationFound]:
    """The :class:`ViolationFound` subclass of violation ``kind`` (``revoked-token-accepted``
    raises ``RevokedTokenAccepted``; ``hostile-token-accepted: alg-none``, a distinct
    violation with its attack class, ``HostileTokenAcceptedAlgNone``)."""
    error = _VIOLATION_ERRORS.get(kind)
    if error is None:
        name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", kind) if part)
        error = type(name, (ViolationFound,), {"kind": kind, "__module__": __name__})
        _VIOLATION_ERRORS[kind] = error
    return error


class _ChaosMachine(RuleBasedStateMachine):
    """What both machines share: the world, the clock, key rotation, outages, the invariant."""

    routes: ClassVar[Mapping[str, Collection[str]]] = {}
    policy: ClassVar[Policy] = Policy()
    scopes: ClassVar[Collection[str]] = ("read", "write")
    actions: ClassVar[Collection[str] | None] = None
    """The rules this machine runs (None: all that apply); see :data:`ACTIONS`."""
    outage_endpoints: ClassVar[tuple[str, ...]] = ("token", "jwks", "introspection")
    rotation_modes: ClassVar[tuple[str, ...]] = ("publish-ahead", "add", "remove-old", "rekey")
    """How ``rotate_keys`` changes the signing keys (:class:`~jitchaos.faults.RotateKeys`
    modes): publishing ahead, as IdPs rotate, first; the emergency shapes after it."""
    publish_ahead: ClassVar[float] = 60.0
    """Seconds between publishing a key and signing with it, for ``publish-ahead``."""
    listen: ClassVar[str | tuple[str, int] | None] = None
    """Where the proxy's IdP side listens (``"host:port"`` or a pair; None: a free port on
    127.0.0.1): fix it for a service in another process, configured with
    ``http://host:port`` as its IdP and issuer."""
    control_listen: ClassVar[str | tuple[str, int] | None] = None
    """Where the proxy's control API listens (None: a free port)."""
    service_listen: ClassVar[str | tuple[str, int] | None] = None
    """Where the proxy fronts what the system under test is called through (the service, or
    a client machine's downstream API); None: a free port. The proxy's listeners share one
    host."""
    shared_clock: ClassVar[bool | None] = None
    """Whether the system under test reads the machine's clock (``now``), so rules may move
    it. None: yes for an application the machine runs, no for a URL (a service in another
    process keeps the wall clock: time passes for real and ``advance`` is left out)."""

    upstream: ClassVar[str | None] = None
    """A real OpenID provider (its issuer or discovery URL): the machine then runs in the
    **staging world** (see :class:`~jitchaos._worlds._StagingWorld`): grants go to the
    provider's token endpoint through the proxy, which re-signs its JWTs; revocation goes to
    its RFC 7009 endpoint where it accepts the token; everything runs on the wall clock. None:
    the embedded IdP."""
    test_clients: ClassVar[Sequence[str | TestClient]] = ()
    """The upstream's clients tokens are granted to, ``"ID:SECRET[:SCOPES]"``; none: one is
    registered for each example (RFC 7591), where the provider allows it."""
    allow_origins: ClassVar[Collection[str]] = ()
    """Other origins (``scheme://host[:port]``) the upstream's discovery may put endpoints on;
    any other refuses the start (credentials and tokens go only to the upstream)."""
    max_wait: ClassVar[float] = 60.0
    """On the wall clock, the longest one ``advance`` waits (seconds): edges further away
    (a token's ``exp`` an hour out) are not waited for."""
    shrink_budget: ClassVar[float] = 90.0
    """On the wall clock, the seconds Hypothesis may spend shrinking a failure (every
    shrink attempt waits for real). Hypothesis checks it after each example, so shrinking
    can overrun it by one example's waits; the run keeps the smallest failure found."""

    # The wiring of the embedded world: what the system under test is configured with
    # (docs/configuration.md lists each with its CLI option and pytest ini option).
    audience: ClassVar[str] = "jitchaos"
    """``aud`` of the embedded IdP's access tokens: what the service checks."""
    access_ttl: ClassVar[int] = 300
    """Access-token lifetime (seconds) in the embedded world."""
    refresh_ttl: ClassVar[int] = 86400
    """Refresh-token lifetime (seconds) in the embedded world."""
    grant_client: ClassVar[str | tuple[str, str]] = "machine:machine-secret"
    """``"ID:SECRET"`` of the client the machine's grants and users' logins are for."""
    introspection_client: ClassVar[str | tuple[str, str]] = "machine-api:machine-api-secret"
    """``"ID:SECRET"`` a service introspects tokens with (RFC 7662) at the proxy's IdP side."""
    app_client: ClassVar[str | tuple[str, str]] = "app:app-secret"
    """``"ID:SECRET"`` a client app under test (:class:`ClientChaosMachine`) gets tokens as."""
    users: ClassVar[Mapping[str, Collection[str]] | None] = None
    """Who logs in (``login``) and the scopes each may grant; None: ``alice`` with every
    scope and ``bob`` with the first."""

    suppress_vacuity: ClassVar[Collection[str]] = ()
    """Vacuity checks not to run (``all-5xx``, ``none-determinate``, ``faults-unused``): a
    clean run fails when it judged nothing (see :mod:`jitchaos._vacuity`), as Hypothesis's
    health checks fail a test that cannot be trusted; name one here to accept that."""

    require_coverage: ClassVar[Collection[str]] = ()
    """Coverage cells (``STATE[:FAULT[:ROUTE]]``, ``*`` for any: ``revoked``,
    ``revoked:revoke``, ``rotated-key:*:GET /read``) a clean run must have judged at least one
    use in; a run that left one empty fails (see :mod:`jitchaos._coverage`)."""

    execute_notebooks: ClassVar[bool] = True
    """Run a failure's repro notebook on a Jupyter kernel before writing it, when one is
    available, so it opens with its outputs and timeline (the note naming it says when it
    was not run, and why)."""

    _fronted: ClassVar[str] = "service"
    """The proxy's service listener that ``service_listen`` pins."""

    @classmethod
    def _listeners(cls) -> dict[str, tuple[str, int]]:
        """The pinned listeners, by the proxy's names for them."""
        pinned = {}
        for attribute, listener in (
            ("listen", "idp"),
            ("control_listen", "control"),
            ("service_listen", cls._fronted),
        ):
            value = getattr(cls, attribute)
            if value is not None:
                try:
                    pinned[listener] = address(f"{cls.__name__}.{attribute}", value)
                except InvalidArgument as error:
                    raise TypeError(str(error)) from None
        hosts = sorted({host for host, _ in pinned.values()})
        if len(hosts) > 1:
            raise TypeError(
                f"{cls.__name__}: the proxy's listeners share one host, not {', '.join(hosts)}"
            )
        return pinned

    _system: ClassVar[str] = "service"
    """The class attribute naming the system under test (an app factory, or a URL)."""

    @classmethod
    def _in_process(cls) -> bool:
        """Whether the machine runs the system under test itself (a fresh one per example)."""
        return not isinstance(getattr(cls, cls._system, None), str)

    @classmethod
    def _clock_is_shared(cls) -> bool:
        if cls.shared_clock is not None:
            return cls.shared_clock
        return cls._in_process()

    _worlds: ClassVar[dict[type, _World | _StagingWorld]] = {}
    _world_lock: ClassVar[threading.Lock] = threading.Lock()
    all_actions: ClassVar[frozenset[str]] = ACTIONS
    """Every rule this kind of machine has (``actions`` picks from these)."""

    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        if not cls.routes:
            raise TypeError(f"{cls.__name__}.routes must map 'METHOD /path' to scopes")
        try:  # a class set up wrong: TypeError, as for the other class settings
            route_scopes(f"{cls.__name__}.routes", cls.routes)
            scope_names(f"{cls.__name__}.scopes", cls.scopes)
        except InvalidArgument as error:
            raise TypeError(str(error)) from None
        if not isinstance(cls.policy, Policy):
            raise TypeError(f"{cls.__name__}.policy={cls.policy!r} must be a Policy")
        if isinstance(cls.actions, str):
            raise TypeError(f"{cls.__name__}.actions={cls.actions!r} must be a set of rule names")
        unknown = set(cls.actions or ()) - cls.all_actions
        if unknown:
            raise TypeError(
                f"{cls.__name__}.actions names rules it does not have: {sorted(unknown)} "
                f"(it has {sorted(cls.all_actions)})"
            )
        world = cls.world_of()
        wanted = frozenset(cls.actions) if cls.actions is not None else cls.all_actions
        self._actions = world.adapt(wanted)
        self.world = world
        self.proxy = world.proxy
        self.clock = world.clock
        self.proxy.reset()
        world.begin_example(self.proxy.ledger.seq)
        self.hostile: dict[str, Forged] = {}
        """The hostile tokens this example submitted, by fingerprint."""
        self._runners: list[web.AppRunner] = []
        self._connections = Connections()  # keep-alive to the proxy's listeners
        self._first_seq = self.proxy.ledger.seq
        """Ledger events up to this one belong to earlier examples."""
        self.steps: list[dict[str, Any]] = []
        """The rules run in this example, with their arguments and draws (for replay)."""
        self._step_times: list[float] = []
        """When each step began (the edges a wall-clock wait goes to start there)."""
        self._step_tokens: dict[int, str] = {}
        """The fingerprint of the access token each granting step got."""
        self.held: list[_Token] = []
        self._last_forged: _Token | None = None

    @classmethod
    def world_of(cls) -> _World | _StagingWorld:
        """The world this machine class's examples share, started on first use: the staging
        world when :attr:`upstream` names a provider, else the embedded one. A provider that
        is no OpenID provider, or refuses a test client, is an InvalidArgument (with nothing
        left running)."""
        with cls._world_lock:
            world = cls._worlds.get(cls)
            if world is None:
                world = cls._worlds[cls] = cls._new_world()
        return world

    @classmethod
    def _new_world(cls) -> _World | _StagingWorld:
        listeners = cls._listeners()
        if cls.upstream is None:
            return _World(
                frozenset(cls.scopes),
                listeners,
                cls._clock_is_shared(),
                fresh_service=cls._in_process(),
                wiring=Wiring.from_machine(cls, frozenset(cls.scopes)),
            )
        if not isinstance(cls.upstream, str):
            raise TypeError(f"{cls.__name__}.upstream={cls.upstream!r} must be a URL")
        if isinstance(cls.test_clients, str):
            raise TypeError(f"{cls.__name__}.test_clients must be a list of 'ID:SECRET[:SCOPES]'")
        clients = [
            c if isinstance(c, TestClient) else TestClient.parse(c) for c in cls.test_clients
        ]
        return _StagingWorld(
            cls.upstream,
            clients,
            frozenset(cls.scopes),
            listeners,
            allow_origins=tuple(cls.allow_origins),
        )

    @property
    def idp_url(self) -> str:
        """The IdP URL the system under test must use (the proxy's IdP side)."""
        return self.proxy.url

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    def teardown(self) -> None:
        RUNS.add_example(type(self), self.example_report())
        self._connections.close()
        for runner in reversed(self._runners):
            self.world.loop.run(runner.cleanup())
        self._runners.clear()

    # Rules both machines have. Each starts a millisecond later than the last, so that every
    # decision and ledger event has its own instant (the checker then needs no replay).

    def _tick(self) -> None:
        if self.world.manual:
            self._move(0.001)

    def _move(self, seconds: float) -> None:
        """Move the machine's own clock (the embedded world's, shared with the system)."""
        assert isinstance(self.clock, ManualClock | OffsetClock)
        self.clock.advance(seconds)

    def _seconds(self) -> st.SearchStrategy[int]:
        """Clock moves that matter to this policy first (just past its staleness window, then
        its other windows, then just past a token's life), else any move up to an hour. A
        one-second move is no edge: it would be the simplest draw and show nothing."""
        policy = type(self).policy
        edges: list[int] = []
        windows = (policy.staleness, policy.key_staleness, policy.leeway, policy.recovery)
        for seconds in (*windows, self.world.token_life):
            edge = int(seconds) + 1
            if edge > 1 and edge not in edges:
                edges.append(edge)  # the policy's own window first: the simplest move
        return st.sampled_from(edges) | st.integers(1, 3600)

    @_action("advance")
    @precondition(lambda self: self.world.manual or bool(self._edges()))
    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """Move the clock (tokens age, caches go stale), then keep using what is held. On the
        wall clock, wait: straight to one of the instants where this example's changes become
        judgeable (:meth:`_edges`)."""
        data = self._begin("advance", data)
        if self.world.manual:
            self._move(data.draw(self._seconds(), label="seconds"))
        else:
            seconds = data.draw(st.sampled_from(self._edges()), label="seconds")
            time.sleep(max(0.0, float(seconds)))
        self.proxy.engine.tick()
        self._keep_using()

    _EDGE_MARGIN: ClassVar[float] = 0.5
    """How far past a window's end a wall-clock wait goes: past any rounding of the
    service's own clock reads, well short of the next window."""

    def _edges(self) -> list[float]:
        """On the wall clock, the waits (seconds from now, to 0.1 s) that take this example
        just past an edge that matters: the policy's staleness after each revocation,
        narrowing or expiry, ``exp`` + leeway of each token granted, the key staleness after a
        rotation, the recovery window after an outage ends (and, for a client under test,
        after the refusal that follows a revocation or expiry). Independent lifecycles overlap:
        one wait past an edge judges every change whose edge it also passes. The nearest edge
        comes first, the simplest draw: shrinking, which waits for real on every attempt,
        tries the shortest wait first. An edge already passed waits nothing.

        Which edges there are depends only on the example's steps (one for each step that
        starts a window no longer than :attr:`max_wait`), never on the time or on what a
        system in another process did: a precondition or a draw that did would make
        Hypothesis's replays flaky."""
        policy = type(self).policy
        limit = type(self).max_wait
        life = self.world.token_life
        ends: list[float] = []
        for index, step in enumerate(self.steps):
            at = self._step_times[index]
            rule = step["rule"]
            window: float | None = None
            if rule in ("revoke", "narrow"):
                window = policy.staleness
            elif rule == "expire":
                window = max(policy.staleness, policy.leeway)
            elif rule == "rotate_keys":
                window = policy.key_staleness
            elif rule == "outage":
                window = float(step["args"]["seconds"]) + policy.recovery
            elif rule in ("grant", "login", "refresh"):
                window = life + policy.leeway
                issued = self._step_tokens.get(index)
                record = self.proxy.ledger.lookup(issued) if issued is not None else None
                if record is not None and window <= limit:
                    at, window = record.token.expires_at, policy.leeway
            if window is not None and window <= limit:
                ends.append(at + window)
                if (
                    self._system == "client"
                    and rule in ("revoke", "expire")
                    and window + policy.recovery <= limit
                ):
                    # A client refused just past the window must have recovered within
                    # policy.recovery of that refusal: the edge where presenting the dead
                    # token again is judged.
                    ends.append(at + window + self._EDGE_MARGIN + policy.recovery)
        now = self.clock.now()
        return [
            min(limit, max(0.0, round(end + self._EDGE_MARGIN - now + 0.05, 1)))
            for end in sorted(ends)
        ]

    def _keep_using(self) -> None:
        """What the clients of the system do as time passes."""

    @_action("rotate_keys")
    @rule(data=st.data())
    def rotate_keys(self, mode: str | None = None, data: st.DataObject | None = None) -> None:
        """Change the signing keys in one of the machine's ``rotation_modes``."""
        cls = type(self)
        if mode is None:  # drawn; a recorded step (or an older record) gives it
            assert data is not None
            mode = data.draw(st.sampled_from(cls.rotation_modes), label="mode")
        self._begin("rotate_keys", mode=mode)
        self._tick()
        self.proxy.apply(RotateKeys(mode=mode, ahead=float(cls.publish_ahead)))  # type: ignore[arg-type]

    @_action("outage")
    @rule(data=st.data(), seconds=st.integers(1, 120))
    def outage(self, data: st.DataObject, seconds: int) -> None:
        """An IdP endpoint answers 503 for a while (clock seconds)."""
        data = self._begin("outage", data, seconds=seconds)
        self._tick()
        endpoint = data.draw(st.sampled_from(type(self).outage_endpoints), label="endpoint")
        self.proxy.apply(Outage(endpoint=endpoint, duration=float(seconds)))  # type: ignore[arg-type]

    # Recording and replaying steps.

    def _begin(self, rule: str, data: Any = None, **args: Any) -> Any:
        """Write down the step about to run; return ``data`` recording its draws."""
        encoded = {
            name: ({"token": self.held.index(v)} if isinstance(v, _Token) else v)
            for name, v in args.items()
        }
        step: dict[str, Any] = {"rule": rule, "args": encoded, "draws": []}
        self.steps.append(step)
        self._step_times.append(self.clock.now())
        if isinstance(data, _Replayed):
            step["draws"] = data.recorded()  # a replay records what it replays
            return data
        return _Draws(data, step["draws"]) if data is not None else None

    def replay_step(self, step: Step | Mapping[str, Any]) -> None:
        """Run one recorded step again (same rule, arguments and drawn values)."""
        if not isinstance(step, Step):
            step = Step.from_json(step)
        method = getattr(self, step.rule, None) if step.rule in type(self).all_actions else None
        if method is None:
            raise ValueError(f"step {step.to_json()!r} names no rule of {type(self).__name__}")
        args = {
            name: (self.held[v["token"]] if isinstance(v, dict) and "token" in v else v)
            for name, v in step.args.items()
        }
        if "data" in inspect.signature(method).parameters:
            args["data"] = _Replayed(list(step.draws), self)
        method(**args)

    def _forge_again(self, attack: str, variant: str | None) -> Any:
        raise ValueError("this machine submits no forged tokens")

    # The invariant.

    @invariant()
    def no_violation(self) -> None:
        found = self.violations()
        if found:
            # Hypothesis runs each shrunk failure last: the ones remembered at the end.
            RUNS.failed(type(self), self.failure(found))
            raise violation_error(found[0].distinct)("\n".join(v.format() for v in found))

    @classmethod
    def run(
        cls,
        *,
        settings: Settings | None = None,
        notebooks: str | os.PathLike[str] | None = "notebooks",
        quiet: bool = False,
    ) -> None:
        """Run the machine under Hypothesis and print the run report (unless ``quiet``; on a
        failure it goes into the error's notes, with the shrunk failure written as a repro
        notebook and its JSON into ``notebooks``)."""
        _runner.run(cls, settings=settings, notebooks=notebooks, quiet=quiet)

    @classmethod
    def last_failure(cls) -> Failure | None:
        """The last failing example (the shrunk one, after a run)."""
        return RUNS.failure(cls)

    @classmethod
    def failures(cls) -> tuple[Failure, ...]:
        """After a run, one shrunk failure for each distinct violation kind it found (in the
        order found)."""
        return RUNS.failures(cls)

    def failure(self, found: Sequence[Violation]) -> Failure:
        """This example and what it showed, as a failure record."""
        cls = type(self)
        client = isinstance(self, ClientChaosMachine)
        return Failure(
            test=cls.__qualname__,
            machine="client" if client else "service",
            service=describe_service(getattr(cls, "client" if client else "service", None)),
            routes=cls.routes,
            policy=cls.policy,
            scopes=tuple(sorted(cls.scopes)),
            actions=self._actions,
            outage_endpoints=cls.outage_endpoints,
            steps=[Step.from_json(step) for step in self.steps],
            violations=[Found(kind=v.kind, sentence=v.sentence, attack=v.attack) for v in found],
        )

    @classmethod
    def minimize(cls) -> Failure | None:
        """Drop from the last failure every step it still shows a violation of the same kind
        without (:meth:`run` calls this); :meth:`last_failure` returns the result from then
        on. See :func:`jitchaos._runner.minimize`."""
        return _runner.minimize(cls)

    TestCase = _TestCase()  # type: ignore[assignment]

    @classmethod
    def report(cls) -> RunReport:
        """Recovery times and latencies over every example this machine class has run."""
        return RUNS.report(cls)

    def example_report(self) -> RunReport:
        """Recovery times and latencies in this example so far."""
        return report(
            self.proxy.ledger,
            self.proxy.history.entries,
            policy=type(self).policy,
            required_scopes=type(self).routes,
            hostile=self.hostile,
            since=self._first_seq,
        )

    def violations(self) -> tuple[Violation, ...]:
        """What the checker finds in this example's decisions so far."""
        return check(
            self.proxy.ledger,
            self.proxy.history.decisions,
            policy=type(self).policy,
            required_scopes=type(self).routes,
            hostile=self.hostile,
            clients=self._judged_clients(),
            since=self._first_seq,
        )

    def _judged_clients(self) -> frozenset[str]:
        """The OAuth clients whose own conduct the checker judges (a client app under test)."""
        return frozenset()

    # Talking to the IdP and the services, synchronously (rules are synchronous).

    def _request(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        return exchange(method, url, headers=headers, body=body, connections=self._connections)

    def _token_request(self, form: Mapping[str, str], client: str | None = None) -> dict[str, Any]:
        """POST /token at the proxy's IdP side as ``client`` (None: the grant client); the
        JSON answer, or {} when refused."""
        if client is None:
            client = self.world.wiring.grant_client[0]
        status, _, body = self._request(
            f"{self.proxy.url}/token",
            method="POST",
            headers=_basic(TestClient(client, self.world.secret(client)))
            | {"Content-Type": "application/x-www-form-urlencoded"},
            body=urllib.parse.urlencode(form).encode(),
        )
        if status != 200:
            return {}
        data: dict[str, Any] = json.loads(body)
        return data

    def _login(self, user: str, scopes: Collection[str]) -> dict[str, Any]:
        """Authorization code with PKCE for ``user`` (the IdP approves ``login_hint`` at once)."""
        client = self.world.wiring.grant_client[0]
        query, verifier = authorization_query(
            client_id=client, redirect_uri=_REDIRECT, scopes=scopes, user=user
        )
        status, headers, _ = self._request(f"{self.proxy.url}/authorize?{query}")
        code, _ = code_from(headers.get("Location", ""))
        if status != 302 or code is None:
            return {}
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _REDIRECT,
                "code_verifier": verifier,
            },
            client,
        )


class AuthChaosMachine(_ChaosMachine):
    """Subclass it and name your service, its routes and its policy::

        class OrdersMachine(AuthChaosMachine):
            service = staticmethod(make_orders_app)  # or "http://127.0.0.1:8000"
            routes = {"GET /orders": {"read"}, "POST /orders": {"write"}}
            policy = Policy(staleness=30)

        TestOrders = OrdersMachine.TestCase

    ``service`` is an aiohttp application factory called as
    ``factory(idp_url=..., issuer=..., now=...)`` (a fresh instance per example; ``now`` is the
    machine's clock, ``idp_url`` the proxy's IdP side, whose introspection accepts client
    ``machine-api`` / ``machine-api-secret``, ``issuer`` the tokens' ``iss``), or the
    URL of a running service (then configured with the proxy's IdP URL, see
    :attr:`idp_url`). Tokens come from client ``machine`` (client credentials) and from users
    ``alice`` (every scope) and ``bob`` (the first scope only) logging in through it.
    """

    service: ClassVar[ServiceFactory | str]
    outage_endpoints: ClassVar[tuple[str, ...]] = ("jwks", "introspection")
    all_actions = ACTIONS - {"use", "burst"}

    tokens = Bundle("tokens")
    logins = Bundle("logins")
    """Tokens that came with a refresh token (a user's login, or a refresh of one)."""

    def __init__(self) -> None:
        super().__init__()
        target = type(self).service
        if isinstance(target, str):
            self.proxy.retarget("service", target)
        else:
            app = target(idp_url=self.proxy.url, issuer=self.world.issuer, now=self.clock.now)
            self.proxy.retarget("service", self.world.loop.run(self._serve(app)))

    def _scopes(self, data: st.DataObject, allowed: Collection[str]) -> frozenset[str]:
        return data.draw(
            st.frozensets(st.sampled_from(sorted(allowed)), min_size=1), label="scopes"
        )

    def _issued(self, answer: dict[str, Any], principal: str, data: st.DataObject) -> Any:
        if "access_token" not in answer:
            return multiple()  # the IdP refused (an outage, a spent refresh token)
        raw = answer["access_token"]
        token = _Token(
            raw,
            fingerprint(raw),
            frozenset(str(answer.get("scope", "")).split()),
            principal,
            answer.get("refresh_token"),
        )
        self.held.append(token)
        self._step_tokens[len(self.steps) - 1] = token.fingerprint
        # A client uses a fresh token at once.
        self._call(data.draw(st.sampled_from(sorted(type(self).routes)), label="route"), raw)
        return token

    @_action("grant")
    @rule(target=tokens, data=st.data())
    def grant(self, data: st.DataObject) -> Any:
        """A client_credentials token for some of the scopes, used at once on one route."""
        data = self._begin("grant", data)
        self._tick()
        scopes = frozenset(type(self).scopes)
        clients = self.world.grant_clients(scopes)
        client = (
            clients[0]
            if len(clients) == 1
            else data.draw(st.sampled_from(clients), label="client")
        )
        chosen = self._scopes(data, client.scopes or scopes)
        answer = self._token_request(
            {"grant_type": "client_credentials", "scope": " ".join(sorted(chosen))},
            client.client_id,
        )
        return self._issued(answer, client.client_id, data)

    @_action("login")
    @rule(targets=(tokens, logins), data=st.data())
    def login(self, user: str | None = None, data: st.DataObject | None = None) -> Any:
        """A user (one of :attr:`users`) logs in (authorization code + PKCE): an access and a
        refresh token for some of the user's scopes, the access token used at once on one
        route."""
        wiring = self.world.wiring
        assert data is not None
        if user is None:  # drawn; a recorded step gives it
            user = data.draw(st.sampled_from([name for name, _ in wiring.users]), label="user")
        data = self._begin("login", data, user=user)
        self._tick()
        allowed = wiring.scopes_of(user)
        answer = self._login(user, self._scopes(data, allowed))
        return self._issued(answer, user, data)

    @_action("refresh")
    @rule(targets=(tokens, logins), token=logins, data=st.data())
    def refresh(self, token: _Token, data: st.DataObject) -> Any:
        """Exchange a login's refresh token (spending it: a second exchange is reuse, and the
        IdP revokes the whole grant) for a new access token, used at once."""
        data = self._begin("refresh", data, token=token)
        self._tick()
        assert token.refresh is not None
        answer = self._token_request(
            {"grant_type": "refresh_token", "refresh_token": token.refresh}
        )
        return self._issued(answer, token.principal, data)

    @_action("call")
    @rule(token=tokens)
    def call(self, token: _Token) -> None:
        """Call every route with a token."""
        self._begin("call", token=token)
        self._tick()
        for route in sorted(type(self).routes):
            self._call(route, token.raw)

    @_action("revoke")
    @rule(token=tokens, whole_grant=st.booleans())
    def revoke(self, token: _Token, whole_grant: bool) -> None:
        """Revoke a token, or its whole grant (a logout)."""
        self._begin("revoke", token=token, whole_grant=whole_grant)
        self._tick()
        target = f"token:{token.fingerprint}"
        if isinstance(self.world, _StagingWorld) and not whole_grant:
            # At the IdP first (RFC 7009): the proxy's ledger records what it accepts.
            revoked, why = self.world.revoke_at_idp(token.raw, token.principal)
            self.world.revoked_by("the IdP (RFC 7009)" if revoked else f"the proxy ({why})")
            if revoked:
                return
        elif isinstance(self.world, _StagingWorld):
            self.world.revoked_by("the proxy (a whole grant: RFC 7009 revokes one token)")
        if whole_grant:
            record = self.proxy.ledger.lookup(token.fingerprint)
            assert record is not None
            target = f"grant:{record.grant_id}"
        self.proxy.apply(Revoke(target=target))

    @_action("narrow")
    @rule(token=tokens, data=st.data())
    def narrow(self, token: _Token, data: st.DataObject) -> None:
        """Take scopes away from a token's grant (a role change)."""
        data = self._begin("narrow", data, token=token)
        self._tick()
        kept = (
            data.draw(st.frozensets(st.sampled_from(sorted(token.scopes))), label="kept")
            if token.scopes
            else frozenset()
        )
        self.proxy.apply(Narrow(scopes=kept, target=f"token:{token.fingerprint}"))

    @_action("expire")
    @rule(token=tokens)
    def expire(self, token: _Token) -> None:
        """Make a live token expired now (the IdP ended its session early)."""
        self._begin("expire", token=token)
        self._tick()
        self.proxy.apply(Expire(target=f"token:{token.fingerprint}"))

    @_action("submit_hostile")
    @rule(token=tokens, data=st.data())
    def submit_hostile(self, token: _Token, data: st.DataObject) -> None:
        """Call a route with a forged variant of a legitimate token; the legitimate one must
        still work after it (checked by the decisions of later calls)."""
        from jitchaos.strategies import hostile_tokens

        data = self._begin("submit_hostile", data, token=token)
        self._last_forged = token
        self._tick()
        # A token whose key was removed can no longer be the base of an attack on that key.
        # (Checked, not assumed, so that a replay outside Hypothesis, where it holds, runs.)
        if self.world.signing_keys.get(jwt.get_unverified_header(token.raw)["kid"]) is None:
            reject()
        strict = type(self).policy.strict_profile
        forged = data.draw(
            hostile_tokens(
                legitimate=token.raw,
                keys=self.world.signing_keys,
                now=self.clock.now(),
                leeway=type(self).policy.leeway,
            ).filter(lambda forged: forged.required or strict),
            label="hostile",
        )
        # The checker judges each by who could have made it, and profile deviations only when
        # the policy asks for the strict profile; what the RFCs let a correct service accept
        # (unknown scopes, an iat in the future, ...) is submitted only then.
        self.hostile[fingerprint(forged.token)] = Forged(
            forged.attack, forged.variant, forged.finding
        )
        route = data.draw(st.sampled_from(sorted(type(self).routes)), label="route")
        self._call(route, forged.token)
        self._call(route, token.raw)

    def _forge_again(self, attack: str, variant: str | None) -> Any:
        """A forged token of the same attack class and variant against the same legitimate
        token (replay records those, never the forged token itself)."""
        from hypothesis import HealthCheck, find, settings

        from jitchaos.strategies import hostile_tokens

        assert self._last_forged is not None
        return find(
            hostile_tokens(
                legitimate=self._last_forged.raw,
                keys=self.world.signing_keys,
                attacks=st.just(attack),
                now=self.clock.now(),
                leeway=type(self).policy.leeway,
            ),
            lambda forged: (
                (forged.required or type(self).policy.strict_profile)
                and (variant is None or forged.variant == variant)
            ),
            settings=settings(
                database=None, derandomize=True, suppress_health_check=list(HealthCheck)
            ),
        )

    def _keep_using(self) -> None:
        for token in self.held[-3:]:
            for route in sorted(type(self).routes):
                self._call(route, token.raw)

    def _call(self, route: str, token: str) -> int:
        method, path = route.split(" ", 1)
        status, _, _ = self._request(
            self.proxy.service_url("service") + path,
            method=method,
            headers={"Authorization": f"Bearer {token}"},
            body=b"" if method in ("POST", "PUT", "PATCH") else None,
        )
        return status


ClientFactory = Callable[..., web.Application]
"""``factory(idp_url=..., issuer=..., now=..., downstream=..., client=(id, secret))``."""


class ClientChaosMachine(_ChaosMachine):
    """Subclass it to test a *client*: an app that holds tokens and calls an API::

        class GatewayMachine(ClientChaosMachine):
            client = staticmethod(make_gateway)
            routes = {"GET /read": {"read"}, "POST /write": {"write"}}
            policy = Policy(recovery=1)

    ``client`` is called as ``factory(idp_url=..., issuer=..., now=..., downstream=...,
    client=(client_id, secret))``, or is the URL of a client running in its own process (then
    configured with the proxy's IdP side, :attr:`listen`, as its IdP, its downstream listener,
    :attr:`service_listen`, as the API, and client ``app`` / ``app-secret``; it keeps the wall
    clock, so ``advance`` waits for real); the app must answer each of ``routes`` by calling
    the same route on ``downstream`` (a correct resource server behind the proxy that
    introspects every request) with a token it got from ``idp_url`` for user ``alice`` (who
    holds every scope). The checker then also judges the client: a dead token presented again
    after the policy's ``recovery`` window (``no-recovery-after-revoke``), and more than
    ``max_refreshes`` refreshes per access token (``refresh-storm``).
    """

    client: ClassVar[ClientFactory | str]
    outage_endpoints: ClassVar[tuple[str, ...]] = ("token",)
    _fronted: ClassVar[str] = "downstream"
    _system: ClassVar[str] = "client"
    # The downstream introspects every request, so key rotation changes nothing a client sees.
    all_actions = frozenset({"use", "burst", "expire", "revoke", "advance", "outage"})

    @classmethod
    def _new_world(cls) -> _World | _StagingWorld:
        if cls.upstream is not None:
            raise TypeError(
                f"{cls.__name__}.upstream: a client machine runs in the embedded world only "
                "(its client and downstream API are the embedded IdP's)"
            )
        return super()._new_world()

    def __init__(self) -> None:
        super().__init__()
        world, cls = self.world, type(self)
        downstream = reference_service(
            idp_url=self.proxy.url,
            routes=cls.routes,
            client=world.wiring.introspection_client,
        )
        self.proxy.retarget("downstream", world.loop.run(self._serve(downstream)))
        if isinstance(cls.client, str):
            # A client in its own process, configured with the proxy's IdP side (listen) as
            # its IdP, its downstream listener (service_listen) as the API, as app/app-secret.
            self.client_url = cls.client.rstrip("/")
            return
        app = cls.client(
            idp_url=self.proxy.url,
            issuer=world.issuer,
            now=self.clock.now,
            downstream=self.proxy.service_url("downstream"),
            client=world.wiring.app_client,
        )
        self.client_url = world.loop.run(self._serve(app))

    @_action("use")
    @rule(data=st.data())
    def use(self, data: st.DataObject) -> None:
        """One request into the client, which calls the API with its token."""
        data = self._begin("use", data)
        self._tick()
        route = data.draw(st.sampled_from(sorted(type(self).routes)), label="route")
        self.world.loop.run(self._fan_out(route, 1))

    @_action("burst")
    @rule(data=st.data(), n=st.integers(2, 4))
    def burst(self, data: st.DataObject, n: int) -> None:
        """``n`` concurrent requests into the client (they all find the same token)."""
        data = self._begin("burst", data, n=n)
        self._tick()
        route = data.draw(st.sampled_from(sorted(type(self).routes)), label="route")
        self.world.loop.run(self._fan_out(route, n))

    def _judged_clients(self) -> frozenset[str]:
        return frozenset({self.world.wiring.app_client[0]})

    def _current(self) -> tuple[str, str] | None:
        """The newest access token of the client's newest grant: (fingerprint, grant id)."""
        ledger = self.proxy.ledger
        # A client in its own process outlives examples, and may hold a token it got in an
        # earlier one; a fresh one's tokens are this example's.
        since = self._first_seq if type(self)._in_process() else 0
        mine = [
            e.grant_id
            for e in ledger.events_since(since)
            if isinstance(e, Granted) and e.client_id == self.world.wiring.app_client[0]
        ]
        if not mine:
            return None
        for fp in reversed(ledger.get_grant(mine[-1]).fingerprints):
            record = ledger.lookup(fp)
            if record is not None and record.token.kind is TokenKind.ACCESS:
                return fp, mine[-1]
        return None

    def _may_change_token(self) -> bool:
        """Whether ``expire`` and ``revoke`` may run: when the client holds a token from this
        example; always for a client in its own process, which may hold one from an earlier
        example (a precondition on that would make Hypothesis's replays flaky): then they
        change nothing when it holds none."""
        return not type(self)._in_process() or self._current() is not None

    @_action("expire")
    @precondition(lambda self: self._may_change_token())
    @rule()
    def expire(self) -> None:
        """Make the client's current access token expired now (its refresh token lives on)."""
        current = self._current()
        self._begin("expire")
        self._tick()
        if current is not None:
            self.proxy.apply(Expire(target=f"token:{current[0]}"))

    @_action("revoke")
    @precondition(lambda self: self._may_change_token())
    @rule(whole_grant=st.booleans())
    def revoke(self, whole_grant: bool) -> None:
        """Revoke the client's current access token, or its whole grant (logout elsewhere)."""
        current = self._current()
        self._begin("revoke", whole_grant=whole_grant)
        self._tick()
        if current is None:
            return
        target = f"grant:{current[1]}" if whole_grant else f"token:{current[0]}"
        self.proxy.apply(Revoke(target=target))

    def _keep_using(self) -> None:
        self.world.loop.run(self._fan_out(sorted(type(self).routes)[0], 1))

    async def _fan_out(self, route: str, n: int) -> None:
        import aiohttp

        method, path = route.split(" ", 1)
        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                async with session.request(method, self.client_url + path) as answer:
                    await answer.read()

            await asyncio.gather(*(one() for _ in range(n)))
