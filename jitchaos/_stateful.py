"""The stateful layer: a RuleBasedStateMachine that changes credentials under a service.

Rules grant tokens, call the service's routes with them, revoke and narrow grants, move the
clock, rotate keys, take an IdP endpoint down, and submit hostile tokens; the invariant is that
the checker finds no violation. Hypothesis shrinks any failure to the shortest sequence of steps
that shows it. Every fault comes from a rule, never from the proxy's own dice, so shrinking and
replay are sound.

One event loop on a background thread keeps the embedded IdP and the proxy alive across steps
and examples (rules stay synchronous: Hypothesis has no async rules); each example gets a fresh
service instance, so no cache survives from one example into the next.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

import attrs
from aiohttp import web
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from jitchaos._checker import Violation, check
from jitchaos._clock import ManualClock
from jitchaos._keys import KeyRing
from jitchaos._loop import BackgroundLoop
from jitchaos._policy import Policy
from jitchaos._tokens import fingerprint
from jitchaos.faults import Narrow, Outage, Revoke, RotateKeys
from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig
from jitchaos.proxy import ChaosProxy

__all__ = ["AuthChaosMachine", "ServiceFactory"]

ServiceFactory = Callable[..., web.Application]
"""``factory(idp_url=..., issuer=..., now=...)`` -> the service's aiohttp application."""

_CLIENT, _RESOURCE = "machine", "machine-api"


@attrs.frozen
class _Token:
    raw: str = attrs.field(repr=False)
    fingerprint: str
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"token({' '.join(sorted(self.scopes))}, {self.fingerprint})"


class _World:
    """The IdP, proxy and clock one machine class shares across its examples."""

    def __init__(self, scopes: frozenset[str]) -> None:
        self.clock = ManualClock()
        self.loop = BackgroundLoop(name="jitchaos-machine")
        self.loop.start()
        self.client_secret = "machine-secret"
        config = IdPConfig(
            clients=[
                ClientConfig(_CLIENT, self.client_secret, scopes),
                ClientConfig(_RESOURCE, "machine-api-secret", set()),
            ]
        )
        self.idp = EmbeddedIdP(config, clock=self.clock)
        self.first_key = self.idp.keys.current
        self.loop.run(self.idp.start())
        self.proxy = ChaosProxy(
            self.idp, services={"service": "http://127.0.0.1:9"}, clock=self.clock, hold_limit=0.1
        )
        self.loop.run(self.proxy.start())


class AuthChaosMachine(RuleBasedStateMachine):
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
    :attr:`idp_url`).
    """

    service: ClassVar[ServiceFactory | str]
    routes: ClassVar[Mapping[str, Collection[str]]] = {}
    policy: ClassVar[Policy] = Policy()
    scopes: ClassVar[Collection[str]] = ("read", "write")

    _worlds: ClassVar[dict[type, _World]] = {}
    _world_lock: ClassVar[threading.Lock] = threading.Lock()

    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        cls = type(self)
        if not cls.routes:
            raise TypeError(f"{cls.__name__}.routes must map 'METHOD /path' to scopes")
        with cls._world_lock:
            world = cls._worlds.get(cls)
            if world is None:
                world = cls._worlds[cls] = _World(frozenset(cls.scopes))
        self.world = world
        self.proxy = world.proxy
        self.clock = world.clock
        self.proxy.reset()
        # Every example starts from the same world: one signing key, no faults, a fresh
        # service. (The clock only moves forward; everything is judged relative to it.)
        world.idp.keys = KeyRing(key=world.first_key)
        self.hostile: set[str] = set()
        self._runner: web.AppRunner | None = None
        target = cls.service
        if isinstance(target, str):
            self.proxy.retarget("service", target)
        else:
            app = target(idp_url=self.proxy.url, issuer=world.idp.issuer, now=self.clock.now)
            self.proxy.retarget("service", world.loop.run(self._serve(app)))
        self._first_seq = self.proxy.ledger.seq

    @property
    def idp_url(self) -> str:
        """The IdP URL the service must use (the proxy's IdP side)."""
        return self.proxy.url

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    def teardown(self) -> None:
        if self._runner is not None:
            self.world.loop.run(self._runner.cleanup())
            self._runner = None

    # Rules: the world changes. Each starts a millisecond later than the last, so that every
    # decision and ledger event has its own instant (the checker then needs no replay).

    def _tick(self) -> None:
        self.clock.advance(0.001)

    @rule(target=tokens, data=st.data())
    def grant(self, data: st.DataObject) -> _Token:
        """A client_credentials token for some of the scopes, used at once (as a client
        uses a fresh token) on one route."""
        self._tick()
        routes = type(self).routes
        chosen = data.draw(
            st.frozensets(st.sampled_from(sorted(type(self).scopes)), min_size=1), label="scopes"
        )
        body = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "scope": " ".join(sorted(chosen))}
        ).encode()
        answer = self._post(f"{self.proxy.url}/token", body)
        raw = answer["access_token"]
        self._call(data.draw(st.sampled_from(sorted(routes)), label="route"), raw)
        return _Token(raw, fingerprint(raw), chosen)

    @rule(token=tokens)
    def call(self, token: _Token) -> None:
        """Call every route with a token."""
        self._tick()
        for route in sorted(type(self).routes):
            self._call(route, token.raw)

    @rule(token=tokens)
    def revoke(self, token: _Token) -> None:
        self._tick()
        self.proxy.apply(Revoke(target=f"token:{token.fingerprint}"))

    @rule(token=tokens, scopes=st.data())
    def narrow(self, token: _Token, scopes: st.DataObject) -> None:
        self._tick()
        kept = scopes.draw(st.frozensets(st.sampled_from(sorted(token.scopes))), label="kept")
        self.proxy.apply(Narrow(scopes=kept, target=f"token:{token.fingerprint}"))

    @rule(seconds=st.integers(1, 600))
    def advance(self, seconds: int) -> None:
        """Move the clock (tokens age, caches go stale)."""
        self.clock.advance(seconds)
        self.proxy.engine.tick()

    @rule(mode=st.sampled_from(["add", "remove-old", "rekey"]))
    def rotate_keys(self, mode: str) -> None:
        self._tick()
        self.proxy.apply(RotateKeys(mode=mode))  # type: ignore[arg-type]

    @rule(endpoint=st.sampled_from(["jwks", "introspection"]), seconds=st.integers(1, 120))
    def outage(self, endpoint: str, seconds: int) -> None:
        """An IdP endpoint answers 503 for a while (clock seconds)."""
        self._tick()
        self.proxy.apply(Outage(endpoint=endpoint, duration=float(seconds)))  # type: ignore[arg-type]

    @rule(token=tokens, data=st.data())
    def submit_hostile(self, token: _Token, data: st.DataObject) -> None:
        """Call a route with a forged variant of a legitimate token."""
        self._tick()
        import jwt
        from hypothesis import assume

        from jitchaos.strategies import hostile_tokens

        # A token whose key was removed can no longer be the base of an attack on that key.
        assume(self.world.idp.keys.get(jwt.get_unverified_header(token.raw)["kid"]) is not None)
        forged = data.draw(
            hostile_tokens(legitimate=token.raw, keys=self.world.idp.keys), label="hostile"
        )
        self.hostile.add(fingerprint(forged.token))
        route = data.draw(st.sampled_from(sorted(type(self).routes)), label="route")
        self._call(route, forged.token)

    # The invariant.

    @invariant()
    def no_violation(self) -> None:
        found = self.violations()
        if found:
            raise AssertionError("\n".join(v.format() for v in found))

    def violations(self) -> tuple[Violation, ...]:
        """What the checker finds in this example's decisions so far."""
        return check(
            self.proxy.ledger,
            self.proxy.history.decisions,
            policy=type(self).policy,
            required_scopes=type(self).routes,
            hostile=self.hostile,
        )

    # Inside.

    def _call(self, route: str, token: str) -> int:
        method, path = route.split(" ", 1)
        request = urllib.request.Request(  # noqa: S310 - the proxy's own loopback URL
            self.proxy.service_url("service") + path,
            method=method,
            headers={"Authorization": f"Bearer {token}"},
            data=b"" if method in ("POST", "PUT", "PATCH") else None,
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    def _post(self, url: str, body: bytes) -> dict[str, Any]:
        import base64
        import json

        credentials = base64.b64encode(f"{_CLIENT}:{self.world.client_secret}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 - the proxy's own loopback URL
            url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Basic {credentials}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            data: dict[str, Any] = json.loads(answer.read())
        return data
