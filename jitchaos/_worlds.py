"""Where a machine's rules act: a world holds the IdP, the chaos proxy, the clock and the keys
one machine class shares across its examples.

Today there is one, :class:`_World`, the **embedded** world: the embedded IdP behind the proxy,
a manual clock when the service runs in the test process (rules move it; nothing waits), the
wall clock when it runs in another process. A second world (a real upstream IdP, services and
clients in their own processes, the wall clock: issue #17) plugs in here, behind the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping

from jitchaos._clock import ManualClock, OffsetClock
from jitchaos._keys import Algorithm, SigningKey
from jitchaos._loop import BackgroundLoop
from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig, UserConfig
from jitchaos.proxy import ChaosProxy

_CLIENT, _RESOURCE, _APP = "machine", "machine-api", "app"
_SECRETS = {_CLIENT: "machine-secret", _RESOURCE: "machine-api-secret", _APP: "app-secret"}
_REDIRECT = "http://127.0.0.1/callback"
_ACCESS_TTL = 300


class _World:
    """The IdP, proxy and clock one machine class shares across its examples.

    The proxy starts the embedded IdP itself, with the proxy's IdP side as its issuer: a
    service in another process is configured with that one URL. ``listeners`` pins the
    proxy's listeners by name (``idp``, ``control``, ``service``, ``downstream``) to
    addresses on one host; the others get free ports.
    """

    def __init__(
        self,
        scopes: frozenset[str],
        listeners: Mapping[str, tuple[str, int]],
        manual: bool,
        *,
        fresh_service: bool = True,
    ) -> None:
        self.manual = manual
        self.keys = _KeyPool(reuse=fresh_service)
        self.clock: ManualClock | OffsetClock = ManualClock() if manual else OffsetClock()
        self.loop = BackgroundLoop(name="jitchaos-machine")
        self.loop.start()
        least = {min(scopes)} if scopes else set()
        config = IdPConfig(
            clients=[
                ClientConfig(_CLIENT, _SECRETS[_CLIENT], scopes),
                ClientConfig(_RESOURCE, _SECRETS[_RESOURCE], set()),
                ClientConfig(_APP, _SECRETS[_APP], scopes),
            ],
            users=[UserConfig("alice", scopes), UserConfig("bob", least)],
            access_ttl=_ACCESS_TTL,
        )
        self.proxy = ChaosProxy(
            config,
            services={"service": "http://127.0.0.1:9", "downstream": "http://127.0.0.1:9"},
            clock=self.clock,
            hold_limit=0.1,
        )
        host = next(iter(listeners.values()), ("127.0.0.1", 0))[0]
        try:
            self.loop.run(
                self.proxy.start(
                    host,
                    listeners.get("idp", (host, 0))[1],
                    control_port=listeners.get("control", (host, 0))[1],
                    service_ports={
                        name: port
                        for name, (_, port) in listeners.items()
                        if name in ("service", "downstream")
                    },
                )
            )
        except BaseException:
            self.loop.stop()
            raise
        assert self.proxy.idp is not None
        self.idp: EmbeddedIdP = self.proxy.idp
        self.first_key = self.idp.keys.current

    def close(self) -> None:
        """Stop the proxy (and the IdP it started), freeing its ports, and the loop."""
        self.loop.run(self.proxy.stop())
        self.loop.stop()


class _KeyPool:
    """Where key rotations get their new keys.

    An RSA key takes tens of milliseconds to generate, and a machine that rotates keys spent
    most of its time there. The pool generates each key once per run (never before: keys are
    per run) and hands them out in the same order in every example: the n-th rotation of
    any example gets the n-th key, distinct from the first key and from the others. That is
    sound when every example starts a fresh service (nothing remembers an earlier example's
    kids) and the key ring restarts from the first key. A service in another process
    outlives examples, and its JWKS cache would already know a reused kid: there, every key
    is new (``reuse=False``).
    """

    def __init__(self, *, reuse: bool) -> None:
        self._reuse = reuse
        self._keys: dict[tuple[str, int], SigningKey] = {}
        self._taken = 0

    def restart(self) -> None:
        """A new example: hand out the keys from the first again (when reusing)."""
        self._taken = 0

    def take(self, algorithm: Algorithm) -> SigningKey:
        slot = (algorithm, self._taken)
        self._taken += 1
        if not self._reuse:
            return SigningKey.generate(algorithm)
        key = self._keys.get(slot)
        if key is None:
            key = self._keys[slot] = SigningKey.generate(algorithm)
        return key
