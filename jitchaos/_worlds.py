"""Where a machine's rules act: a world holds the IdP, the chaos proxy, the clock and the keys
one machine class shares across its examples. There are two, behind the same rules:

- :class:`_World`, the **embedded** world: the embedded IdP behind the proxy, a manual clock
  when the service runs in the test process (rules move it; nothing waits), the wall clock
  when it runs in another process.
- :class:`_StagingWorld`: a real upstream OpenID provider behind the proxy (which re-signs its
  JWTs, so that narrowing, expiry and key rotation can act on them), test clients given by the
  user or registered per example (RFC 7591), services in their own processes, the wall clock.

A machine names the staging world with one setting, ``upstream``.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs

from jitchaos._clock import ManualClock, OffsetClock, SystemClock
from jitchaos._keys import Algorithm, KeyRing, SigningKey
from jitchaos._loop import BackgroundLoop
from jitchaos._oauth_client import exchange
from jitchaos.errors import InvalidArgument
from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig, UserConfig
from jitchaos.proxy import ChaosProxy

_REDIRECT = "http://127.0.0.1/callback"
_ACCESS_TTL = 300
_SERVICES = {"service": "http://127.0.0.1:9", "downstream": "http://127.0.0.1:9"}


@attrs.frozen
class TestClient:
    """A client of the upstream IdP the machine may get tokens for (``--client``)."""

    client_id: str
    secret: str = attrs.field(repr=False)
    scopes: frozenset[str] | None = None
    """What it may ask for (None: the machine's scopes)."""

    __test__ = False  # not a pytest test class, whatever its name says

    @classmethod
    def parse(cls, text: str) -> TestClient:
        """``"ID:SECRET"`` or ``"ID:SECRET:SCOPES"`` (scopes separated by commas or spaces)."""
        if not isinstance(text, str):
            raise InvalidArgument(f"client {text!r} must be a string 'ID:SECRET[:SCOPES]'")
        client_id, _, rest = text.partition(":")
        secret, colon, scopes = rest.partition(":")
        names = frozenset(scopes.replace(",", " ").split())
        if not client_id or not secret or (colon and not names):
            raise InvalidArgument(
                f"client {_redacted(text)!r} must look like 'ID:SECRET' or 'ID:SECRET:SCOPES'"
            )
        return cls(client_id, secret, names if colon else None)


def _redacted(text: str) -> str:
    """A client argument with its secret hidden (error messages never carry secrets)."""
    client_id, colon, rest = text.partition(":")
    _secret, colon2, scopes = rest.partition(":")
    return client_id + (":***" if colon else "") + (f":{scopes}" if colon2 else "")


def _credentials(setting: str, value: object) -> tuple[str, str]:
    """``"ID:SECRET"`` (or a pair) as a pair; a TypeError naming ``setting`` otherwise (the
    secret never in the message)."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        client_id, secret = value
    elif isinstance(value, str):
        client_id, _, secret = value.partition(":")
    else:
        raise TypeError(f"{setting} must be 'ID:SECRET', not a {type(value).__name__}")
    if not client_id or not secret or ":" in secret or not client_id.isprintable():
        shown = f"{client_id}:***" if isinstance(value, tuple) or ":" in value else value
        raise TypeError(f"{setting}={shown!r} must look like 'ID:SECRET'")
    return client_id, secret


def _seconds_setting(setting: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TypeError(f"{setting}={value!r} must be a positive whole number of seconds")
    return value


@attrs.frozen(kw_only=True)
class Wiring:
    """What the system under test is configured with in the embedded world, and so what the
    embedded IdP must issue: the access tokens' audience and lifetimes, the clients (the one
    the machine's grants use, the one a service introspects with, the one a client app logs in
    as) and the users who log in. The machines' class settings of the same names fill it
    (:meth:`from_machine`); ``jitchaos run`` takes each as an option; every default is listed in
    ``docs/configuration.md``."""

    audience: str = "jitchaos"
    """``aud`` of every access token."""
    access_ttl: int = _ACCESS_TTL
    """Access-token lifetime (seconds)."""
    refresh_ttl: int = 86400
    """Refresh-token lifetime (seconds)."""
    grant_client: tuple[str, str] = ("machine", "machine-secret")
    """The client the ``grant`` rule's tokens (client credentials) and logins are for."""
    introspection_client: tuple[str, str] = ("machine-api", "machine-api-secret")
    """The client a service introspects tokens with (RFC 7662): it may ask for no scope."""
    app_client: tuple[str, str] = ("app", "app-secret")
    """The client a client app under test (:class:`ClientChaosMachine`) gets tokens as."""
    users: tuple[tuple[str, frozenset[str]], ...] = ()
    """Who logs in and the scopes each may grant (empty: ``alice`` with every scope and
    ``bob`` with the first)."""

    @classmethod
    def from_machine(cls, machine: type, scopes: frozenset[str]) -> Wiring:
        """The settings of machine class ``machine``, checked (a TypeError names the wrong
        one, as for the machines' other class settings)."""
        name = machine.__name__
        audience = getattr(machine, "audience", "jitchaos")
        if not isinstance(audience, str) or not audience.strip():
            raise TypeError(f"{name}.audience={audience!r} must be a non-empty string")
        clients = {
            attribute: _credentials(f"{name}.{attribute}", getattr(machine, attribute))
            for attribute in ("grant_client", "introspection_client", "app_client")
        }
        ids = [client_id for client_id, _ in clients.values()]
        if len(set(ids)) != len(ids):
            raise TypeError(
                f"{name}: grant_client, introspection_client and app_client must be three "
                f"different clients, not {ids}"
            )
        raw_users = getattr(machine, "users", None)
        users: tuple[tuple[str, frozenset[str]], ...]
        if raw_users is None:
            users = (("alice", scopes), ("bob", frozenset({min(scopes)}) if scopes else scopes))
        else:
            if not isinstance(raw_users, Mapping) or not raw_users:
                raise TypeError(
                    f"{name}.users={raw_users!r} must map each user's name to their scopes"
                )
            checked = []
            for user, granted in raw_users.items():
                if not isinstance(user, str) or not user or isinstance(granted, str):
                    raise TypeError(
                        f"{name}.users: {user!r}: {granted!r} must be a name and a set of scopes"
                    )
                extra = set(granted) - scopes
                if not granted:
                    raise TypeError(f"{name}.users: {user!r} must hold at least one scope")
                if extra:
                    raise TypeError(
                        f"{name}.users: {user!r} holds {sorted(extra)}, not in scopes "
                        f"{sorted(scopes)}"
                    )
                checked.append((user, frozenset(granted)))
            users = tuple(checked)
        return cls(
            audience=audience,
            access_ttl=_seconds_setting(
                f"{name}.access_ttl", getattr(machine, "access_ttl", _ACCESS_TTL)
            ),
            refresh_ttl=_seconds_setting(
                f"{name}.refresh_ttl", getattr(machine, "refresh_ttl", 86400)
            ),
            users=users,
            **clients,
        )

    def secret(self, client_id: str) -> str:
        for known, secret in (self.grant_client, self.introspection_client, self.app_client):
            if known == client_id:
                return secret
        raise KeyError(client_id)

    def scopes_of(self, user: str) -> frozenset[str]:
        return dict(self.users)[user]

    def idp_config(self, scopes: frozenset[str]) -> IdPConfig:
        return IdPConfig(
            clients=[
                ClientConfig(*self.grant_client, scopes),
                ClientConfig(*self.introspection_client, set()),
                ClientConfig(*self.app_client, scopes),
            ],
            users=[UserConfig(user, granted) for user, granted in self.users],
            audience=self.audience,
            access_ttl=self.access_ttl,
            max_ttl=max(self.access_ttl, 3600),
            refresh_ttl=self.refresh_ttl,
        )


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
        wiring: Wiring | None = None,
    ) -> None:
        self.manual = manual
        self.wiring = wiring if wiring is not None else Wiring.from_machine(_Defaults, scopes)
        self.keys = _KeyPool(reuse=fresh_service)
        self.clock: ManualClock | OffsetClock = ManualClock() if manual else OffsetClock()
        self.loop = BackgroundLoop(name="jitchaos-machine")
        self.loop.start()
        config = self.wiring.idp_config(scopes)
        self.proxy = ChaosProxy(config, services=_SERVICES, clock=self.clock, hold_limit=0.1)
        _start(self.loop, self.proxy, listeners)
        assert self.proxy.idp is not None
        self.idp: EmbeddedIdP = self.proxy.idp
        self.issuer = self.idp.issuer
        self.first_key = self.idp.keys.current
        self.token_life: float = self.wiring.access_ttl
        """How long the access tokens the machines get live (seconds)."""

    def adapt(self, actions: frozenset[str]) -> frozenset[str]:
        """The rules a machine wanting ``actions`` runs here: all of them."""
        return actions

    @property
    def signing_keys(self) -> KeyRing:
        """The keys tokens reaching the service are signed with (what forgeries aim at)."""
        return self.idp.keys

    def grant_clients(self, scopes: Collection[str]) -> Sequence[TestClient]:
        """The clients the ``grant`` rule may get tokens for."""
        return (TestClient(*self.wiring.grant_client, frozenset(scopes)),)

    def secret(self, client_id: str) -> str:
        return self.wiring.secret(client_id)

    def begin_example(self, proxy_ledger_seq: int) -> None:
        """Every example starts from the same world: one signing key, no faults, a fresh
        service. (The clock only moves forward; everything is judged relative to it.)"""
        self.keys.restart()
        earlier = self.idp.keys
        self.idp.keys = KeyRing(key=self.first_key, source=self.keys.take)
        if not any(key is self.first_key for key in earlier.keys):
            # An earlier example removed or rekeyed the first key: for a service that outlives
            # examples, it comes back into the JWKS now.
            self.proxy.ledger.publish_key(self.first_key.kid)

    def close(self) -> None:
        """Stop the proxy (and the IdP it started), freeing its ports, and the loop."""
        self.loop.run(self.proxy.stop())
        self.loop.stop()


def _same_origin(url: str, *origins: str) -> bool:
    """Whether ``url`` is on the origin of one of ``origins``."""
    from yarl import URL

    try:
        return any(URL(url).origin() == URL(other).origin() for other in origins)
    except ValueError:
        return False


class _Defaults:
    """The machines' wiring settings at their defaults (a world made without a machine)."""

    audience = "jitchaos"
    access_ttl = _ACCESS_TTL
    refresh_ttl = 86400
    grant_client = "machine:machine-secret"
    introspection_client = "machine-api:machine-api-secret"
    app_client = "app:app-secret"
    users = None


def _start(
    loop: BackgroundLoop, proxy: ChaosProxy, listeners: Mapping[str, tuple[str, int]]
) -> None:
    """Serve ``proxy`` on the pinned ``listeners`` (free ports for the others); on failure,
    stop what started, the loop included."""
    host = next(iter(listeners.values()), ("127.0.0.1", 0))[0]
    try:
        loop.run(
            proxy.start(
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
        loop.stop()
        raise


class _StagingWorld:
    """A real OpenID provider (``upstream``: its issuer or discovery URL) behind the proxy,
    on the wall clock.

    The proxy re-signs the provider's JWT access tokens with keys of its own (generated per
    run), so that expiry, narrowing and key rotation act on JWT services too; opaque tokens
    change through the introspection answers it relays. A service is configured with the
    proxy's IdP side as its IdP (discovery, JWKS, introspection) and the provider's issuer.

    Tokens come from ``clients`` (client credentials), or, when none are given and the provider
    offers dynamic client registration (RFC 7591), from a client registered for each example:
    a fresh subject, so that no example inherits what a service cached about an earlier one.
    Users' logins need the provider's login pages, so ``login`` and ``refresh`` do not run.
    """

    manual = False
    wiring = Wiring()
    """The embedded world's wiring, unused here but for its defaults: the provider has its
    own clients, users and lifetimes."""

    def __init__(
        self,
        upstream: str,
        clients: Sequence[TestClient],
        scopes: frozenset[str],
        listeners: Mapping[str, tuple[str, int]],
        *,
        allow_origins: Sequence[str] = (),
    ) -> None:
        self.clock = SystemClock()
        self.keys = _KeyPool(reuse=False)
        self._scopes = scopes
        self.proxy = ChaosProxy(
            upstream,
            services=_SERVICES,
            clock=self.clock,
            resign=True,
            hold_limit=0.1,
            allow_origins=allow_origins,
        )
        self.loop = BackgroundLoop(name="jitchaos-staging")
        self.loop.start()
        _start(self.loop, self.proxy, listeners)
        try:
            self.metadata = self._discover(upstream)
            self.issuer = str(self.metadata["issuer"])
            self.registration = self.metadata.get("registration_endpoint")
            if isinstance(self.registration, str) and not _same_origin(
                self.registration, upstream, self.proxy.url, *allow_origins
            ):
                raise InvalidArgument(
                    f"upstream {upstream!r}: its registration_endpoint "
                    f"{self.registration!r} is on another origin: jitchaos registers clients "
                    "only at the configured upstream"
                )
            self._given = tuple(clients)
            if not self._given and not isinstance(self.registration, str):
                raise InvalidArgument(
                    f"upstream {upstream!r} offers no dynamic client registration (RFC 7591): "
                    "give test clients with --client ID:SECRET[:SCOPES]"
                )
            self._clients: tuple[TestClient, ...] = self._given
            self.registered: list[str] = []
            """The client ids registered, one per example (when no clients were given)."""
            if not self._given:
                self._register()  # registration works, and a client to learn the token life
            lives = [self._check_client(client) for client in self._clients]
            self.token_life: float = float(max(lives))
            """How long the provider's access tokens live (what the first grants said)."""
        except BaseException:
            self.close()
            raise
        self.first_key = self.signing_keys.current
        self.revocations: Counter[str] = Counter()
        """Who applied each revocation (the report says which)."""

    def revoked_by(self, who: str) -> None:
        self.revocations[who] += 1

    def adapt(self, actions: frozenset[str]) -> frozenset[str]:
        """The rules a machine wanting ``actions`` runs here. A real IdP's user logins need
        its login pages: a test client's grant stands in for ``login`` (a principal getting
        tokens), and ``refresh`` does not run (client credentials come without refresh
        tokens)."""
        adapted = actions - {"login", "refresh"}
        return adapted | {"grant"} if "login" in actions else adapted

    def _discover(self, upstream: str) -> dict[str, Any]:
        """The provider's metadata, read through the proxy; InvalidArgument when the upstream
        is not an OpenID provider."""
        try:
            status, _, body = exchange("GET", self.proxy.discovery_url, timeout=15)
            metadata = json.loads(body) if status == 200 else None
        except (OSError, ValueError):
            metadata = None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("issuer"), str)
            or not isinstance(metadata.get("token_endpoint"), str)
        ):
            raise InvalidArgument(
                f"upstream {upstream!r} is not an OpenID provider: no discovery document "
                "with an issuer and a token endpoint at "
                f"{upstream.rstrip('/')}/.well-known/openid-configuration"
            )
        return metadata

    def _check_client(self, client: TestClient) -> int:
        """Get a token for ``client`` (InvalidArgument when the provider refuses); how long
        it lives."""
        status, _, body = self.token_request(
            client, {"grant_type": "client_credentials", **self._scope_form(client)}
        )
        if status != 200:
            raise InvalidArgument(
                f"the IdP refused client {client.client_id!r}: HTTP {status} {_why(body)}"
            )
        life = _json_object(body).get("expires_in")
        return life if isinstance(life, int) and life > 0 else 3600

    def _scope_form(self, client: TestClient) -> dict[str, str]:
        wanted = client.scopes if client.scopes is not None else self._scopes
        return {"scope": " ".join(sorted(wanted))} if wanted else {}

    def token_request(
        self, client: TestClient, form: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """POST the token endpoint through the proxy as ``client`` (HTTP Basic)."""
        return exchange(
            "POST",
            f"{self.proxy.url}/token",
            headers=_basic(client) | {"Content-Type": "application/x-www-form-urlencoded"},
            body=urllib.parse.urlencode(form).encode(),
            timeout=15,
        )

    @property
    def signing_keys(self) -> KeyRing:
        keys = self.proxy.keys
        assert keys is not None  # the proxy re-signs
        return keys

    def grant_clients(self, scopes: Collection[str]) -> Sequence[TestClient]:
        return self._clients

    def secret(self, client_id: str) -> str:
        for client in self._clients:
            if client.client_id == client_id:
                return client.secret
        raise KeyError(client_id)

    def begin_example(self, proxy_ledger_seq: int) -> None:
        """Every example starts signing with the first key (published since the start, so
        the checker holds no service to a key it may not know yet; one an earlier example
        withdrew is published again); with no clients given, a fresh client is registered
        for it (RFC 7591)."""
        ring = self.signing_keys
        if not any(key is self.first_key for key in ring.keys):
            self.proxy.ledger.publish_key(self.first_key.kid)
        ring.restart(self.first_key)
        if not self._given:
            self._register()

    def _register(self) -> None:
        """Register a fresh client (RFC 7591) and make it the one grants are for."""
        assert isinstance(self.registration, str)
        request = {
            "client_name": f"jitchaos example {len(self.registered) + 1}",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": " ".join(sorted(self._scopes)),
        }
        status, _, body = exchange(
            "POST",
            self.registration,
            headers={"Content-Type": "application/json"},
            body=json.dumps(request).encode(),
            timeout=15,
        )
        answer = _json_object(body)
        if status not in (200, 201) or not isinstance(answer.get("client_id"), str):
            raise InvalidArgument(
                f"dynamic client registration at {self.registration} failed: HTTP {status} "
                f"{_why(body)}"
            )
        client = TestClient(
            answer["client_id"], str(answer.get("client_secret", "")), self._scopes
        )
        self.registered.append(client.client_id)
        self._clients = (client,)

    def revoke_at_idp(self, raw: str, client_id: str) -> tuple[bool, str]:
        """RFC 7009 revocation of an access token at the provider, through the proxy (whose
        ledger records it when the provider accepts). (True, "") when it revoked it; (False,
        why) when the provider has no revocation endpoint or refused."""
        if not isinstance(self.metadata.get("revocation_endpoint"), str):
            return False, "the IdP has no revocation endpoint"
        client = next(c for c in self._clients if c.client_id == client_id)
        status, _, body = exchange(
            "POST",
            f"{self.proxy.url}/revoke",
            headers=_basic(client) | {"Content-Type": "application/x-www-form-urlencoded"},
            body=urllib.parse.urlencode(
                {"token": raw, "token_type_hint": "access_token"}
            ).encode(),
            timeout=15,
        )
        if status == 200:
            return True, ""
        return False, f"the IdP refused: HTTP {status} {_why(body)}"

    def close(self) -> None:
        self.loop.run(self.proxy.stop())
        self.loop.stop()


def _basic(client: TestClient) -> dict[str, str]:
    # RFC 6749 §2.3.1: each part form-urlencoded before the Basic encoding.
    pair = f"{urllib.parse.quote_plus(client.client_id)}:{urllib.parse.quote_plus(client.secret)}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _why(body: bytes) -> str:
    """An OAuth error answer in a few words (never the body of anything else)."""
    data = _json_object(body)
    error = data.get("error")
    if not isinstance(error, str):
        return "(no OAuth error in the answer)"
    description = data.get("error_description")
    return f"{error}: {description}" if isinstance(description, str) else error


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
