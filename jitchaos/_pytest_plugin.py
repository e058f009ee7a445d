"""The pytest plugin: just-in-time credentials per test, audited when the test ends.

Fixtures: ``jit`` (the broker, holding for the current test), ``jitchaos_services`` (each
service's URL through the proxy, by name), ``jitchaos_idp``, ``jitchaos_proxy`` and
``jitchaos_clock`` (one of each per worker process). A test that ends holding a credential,
uses one after giving it back, lets another test use one, gets a token living longer than it
asked, or had one accepted outside its window or scopes fails with the audit report.

Options: ``--jitchaos-audit PATH`` keeps the audit log (one file per xdist worker,
``PATH.gw0.jsonl``...; ``jitchaos audit PATH`` reads them all), ``--jitchaos-upstream URL``
takes credentials from a real IdP as the clients of ``$JITCHAOS_CLIENT_ID`` and
``$JITCHAOS_CLIENT_SECRET``, ``$JITCHAOS_CLIENTS`` (``id:secret,id:secret``) or the ini option
``jitchaos_clients`` (``ID:SECRET`` lines; ``ID:$VAR`` reads the secret from the environment).
The ini option ``jitchaos_routes`` (``METHOD /path=scope scope`` lines) gives the scopes every
test's routes need. The embedded IdP's wiring is ini options too: ``jitchaos_audience``,
``jitchaos_token_ttl``, ``jitchaos_users`` (``NAME`` or ``NAME:scope,scope``) and
``jitchaos_introspection_client`` (``ID:SECRET`` or ``ID:$VAR``: the client an introspecting
service authenticates with). A service listed in ``jitchaos_services`` by ``NAME`` alone is
started later, by a fixture that needs the proxy's URL (``jitchaos_proxy.url``, its IdP
side), which then gives its address with ``jitchaos_proxy.retarget(NAME, URL)``. The marker
``@pytest.mark.jitchaos_policy(staleness=..., leeway=..., max_ttl=..., scopes={...})`` sets
one test's policy, lease cap and routes.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from jitchaos._broker import Broker
    from jitchaos._clock import OffsetClock
    from jitchaos._post_audit import PostTestAudit
    from jitchaos.idp import EmbeddedIdP
    from jitchaos.proxy import ChaosProxy

# pytest loads this module through its entry point while Hypothesis's own plugin is still
# loading; jitchaos registers Hypothesis strategies on import, so it is imported only once a
# fixture needs it (Hypothesis warns about work done in that window).

__all__ = ["JitchaosAuditFailure", "JitchaosConfigWarning"]

_CLIENT = "jitchaos"
_BROKER = pytest.StashKey[object]()
_ROUTES = pytest.StashKey[dict[str, frozenset[str]]]()
_SINCE = pytest.StashKey[int]()  # the proxy's history seq when a test began: its faults follow


class JitchaosAuditFailure(AssertionError):
    """A test broke least privilege; the message is the post-test audit report."""


class JitchaosConfigWarning(pytest.PytestWarning):
    """The plugin was set up so that part of the audit cannot run (no route scopes)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jitchaos", "just-in-time credentials (jitchaos)")
    group.addoption(
        "--jitchaos-audit",
        metavar="PATH",
        default=None,
        help="keep the credential audit log here (one file per xdist worker)",
    )
    group.addoption(
        "--jitchaos-notebooks",
        metavar="DIR",
        default=None,
        help="write a runnable notebook (findings, evidence, timeline plot) for each test "
        "that fails its post-test audit, and each failing jitchaos state machine's repro "
        "notebook (default for those: notebooks)",
    )
    group.addoption(
        "--jitchaos-upstream",
        metavar="URL",
        default=None,
        help="grant from this real IdP (client_credentials, with $JITCHAOS_CLIENT_ID and "
        "$JITCHAOS_CLIENT_SECRET) instead of the embedded one",
    )
    parser.addini("jitchaos_scopes", "scopes the embedded IdP may grant", default="read write")
    parser.addini(
        "jitchaos_users",
        "users the embedded IdP knows, NAME or NAME:scope,scope (default: every scope)",
        default="alice bob",
    )
    parser.addini("jitchaos_audience", "aud of the embedded IdP's tokens", default="jitchaos")
    parser.addini(
        "jitchaos_token_ttl",
        "access-token lifetime of the embedded IdP, seconds (a lease asks for its own)",
        default="300",
    )
    parser.addini(
        "jitchaos_introspection_client",
        "ID:SECRET (or ID:$VAR) a service introspects with at the proxy's IdP side",
        default="",
    )
    parser.addini(
        "jitchaos_services",
        "services the proxy fronts, NAME=URL one per line (NAME alone: a fixture gives its "
        "URL later with jitchaos_proxy.retarget)",
        type="linelist",
        default=[],
    )
    parser.addini(
        "jitchaos_routes",
        "the scopes each route needs, 'METHOD /path=scope scope', one per line",
        type="linelist",
        default=[],
    )
    parser.addini(
        "jitchaos_clients",
        "clients of the real IdP, ID:SECRET one per line (ID:$VAR reads the environment)",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    directory = config.getoption("jitchaos_notebooks", None)
    if directory is not None:
        # Where Machine.TestCase writes repro notebooks of shrunk failures.
        os.environ["JITCHAOS_NOTEBOOKS"] = str(directory)
    config.addinivalue_line(
        "markers",
        "jitchaos_policy(staleness=0, leeway=0, key_staleness=0, max_ttl=None, scopes=None, "
        "suppress=()): the policy the post-test audit applies, the lease cap of the test's "
        "grants, the scopes each 'METHOD /path' needs, and vacuity checks not to run "
        "('all-5xx': a test whose every call to a route answered 5xx fails, nothing judged)",
    )
    # Read once: a wrong line is a usage error now, not a failure in every test.
    config.stash[_ROUTES] = _routes(config)


def _worker(config: pytest.Config) -> str | None:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else None


def _audit_path(config: pytest.Config, tmp: pytest.TempPathFactory) -> Path:
    kept = config.getoption("jitchaos_audit")
    worker = _worker(config)
    if kept is None:
        return tmp.mktemp("jitchaos") / "audit.jsonl"
    path = Path(kept)
    if worker is not None:  # one log per worker: lines of two processes never mix
        path = path.with_name(f"{path.stem}.{worker}{path.suffix or '.jsonl'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def jitchaos_clock() -> OffsetClock:
    """The clock of the embedded IdP, the proxy and the broker: wall time that tests may move
    forward (``jitchaos_clock.advance(seconds)``)."""
    from jitchaos._clock import OffsetClock

    return OffsetClock()


@pytest.fixture(scope="session")
def _jitchaos_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def jitchaos_idp(
    request: pytest.FixtureRequest, jitchaos_clock: OffsetClock, _jitchaos_secret: str
) -> Iterator[EmbeddedIdP | None]:
    """The embedded IdP (None with ``--jitchaos-upstream``)."""
    from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig

    if request.config.getoption("jitchaos_upstream"):
        yield None
        return
    ini = request.config.getini
    scopes = set(ini("jitchaos_scopes").split()) | {"openid"}
    clients: Any = [ClientConfig(_CLIENT, _jitchaos_secret, scopes)]
    introspection = str(ini("jitchaos_introspection_client")).strip()
    if introspection:
        client_id, secret = _credential("jitchaos_introspection_client", introspection)
        clients.append(ClientConfig(client_id, secret, set()))
    users: Any = tuple(_user(entry, scopes) for entry in ini("jitchaos_users").split())
    ttl = str(ini("jitchaos_token_ttl")).strip()
    if not ttl.isdigit() or int(ttl) < 1:
        raise pytest.UsageError(f"jitchaos_token_ttl: {ttl!r} is not a whole number of seconds")
    from jitchaos.errors import ConfigError

    try:
        config = IdPConfig(
            clients=clients,
            users=users,
            audience=str(ini("jitchaos_audience")).strip(),
            access_ttl=int(ttl),
            max_ttl=max(int(ttl), 3600),
        )
    except ConfigError as error:
        raise pytest.UsageError(f"jitchaos: {error}") from None
    with EmbeddedIdP(config, clock=jitchaos_clock).in_thread() as idp:
        yield idp


@pytest.fixture(scope="session")
def jitchaos_proxy(
    request: pytest.FixtureRequest,
    jitchaos_idp: EmbeddedIdP | None,
    jitchaos_clock: OffsetClock,
) -> Iterator[ChaosProxy]:
    """The chaos proxy in front of the IdP and of the services named in ``jitchaos_services``."""
    from jitchaos.proxy import ChaosProxy

    services = _services(request.config)
    upstream = (
        jitchaos_idp if jitchaos_idp is not None else request.config.getoption("jitchaos_upstream")
    )
    with ChaosProxy(upstream, services=services, clock=jitchaos_clock).in_thread() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def _jitchaos_broker(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    jitchaos_proxy: ChaosProxy,
    _jitchaos_secret: str,
) -> Iterator[Broker]:
    from jitchaos._audit import AuditLog
    from jitchaos._broker import Broker

    if request.config.getoption("jitchaos_upstream"):
        clients = _clients(request.config)
        if not clients:
            raise pytest.UsageError(
                "--jitchaos-upstream needs a client: $JITCHAOS_CLIENT_ID and "
                "$JITCHAOS_CLIENT_SECRET, $JITCHAOS_CLIENTS or the jitchaos_clients ini option"
            )
        client_id, secret = next(iter(clients.items()))
    else:
        clients = {}
        client_id, secret = _CLIENT, _jitchaos_secret
    from jitchaos._audit import Judging
    from jitchaos._policy import Policy

    log = AuditLog(_audit_path(request.config, tmp_path_factory))
    # How this run judges uses, before any grant: `jitchaos audit` on the file alone then finds
    # what each test's audit found (a test's own marker adds its record when it is audited).
    log.write_judging(Judging(None, Policy(), request.config.stash.get(_ROUTES, None) or None))
    broker = Broker(
        jitchaos_proxy, client_id=client_id, client_secret=secret, audit=log, clients=clients
    )
    request.config.stash[_BROKER] = broker
    try:
        yield broker
    finally:
        log.close()


_LATER = "http://127.0.0.1:9"
"""Where a service whose URL a fixture gives later points until then (nothing listens on the
discard port: a call answers 502, the service is not reachable)."""


def _services(config: pytest.Config) -> dict[str, str]:
    """``jitchaos_services``: NAME=URL lines, or NAME alone for a URL given later."""
    services = {}
    for line in config.getini("jitchaos_services"):
        name, sep, url = str(line).partition("=")
        name = name.strip()
        if not name.isidentifier() or (sep and not url.strip()):
            raise pytest.UsageError(
                f"jitchaos_services: {line!r} is not NAME=URL (or NAME, its URL given later)"
            )
        services[name] = url.strip() if sep else _LATER
    return services


def _credential(option: str, entry: str) -> tuple[str, str]:
    """``ID:SECRET`` or ``ID:$VAR`` from the environment; errors never show the secret."""
    client, sep, value = entry.partition(":")
    if value.startswith("$"):
        value = os.environ.get(value[1:], "")
        if not value:
            raise pytest.UsageError(f"{option}: {client}: ${entry.partition('$')[2]} is not set")
    if not sep or not client.strip() or not value:
        raise pytest.UsageError(f"{option}: {client.strip() or '?'}:... is not ID:SECRET")
    return client.strip(), value


def _user(entry: str, scopes: set[str]) -> Any:
    """``NAME`` (every scope) or ``NAME:scope,scope`` from ``jitchaos_users``."""
    from jitchaos.idp import UserConfig

    name, sep, granted = entry.partition(":")
    chosen = {s for s in granted.split(",") if s} if sep else scopes
    if not name or (sep and not chosen):
        raise pytest.UsageError(f"jitchaos_users: {entry!r} is not NAME or NAME:scope,scope")
    extra = chosen - scopes
    if extra:
        raise pytest.UsageError(
            f"jitchaos_users: {name} holds {sorted(extra)}, not in jitchaos_scopes"
        )
    return UserConfig(name, chosen)


def _clients(config: pytest.Config) -> dict[str, str]:
    """The real IdP's clients, in order: $JITCHAOS_CLIENT_ID/SECRET, $JITCHAOS_CLIENTS, then
    the ini option."""
    found: dict[str, str] = {}
    first, secret = os.environ.get("JITCHAOS_CLIENT_ID"), os.environ.get("JITCHAOS_CLIENT_SECRET")
    if first and secret:
        found[first] = secret
    entries = [e for e in os.environ.get("JITCHAOS_CLIENTS", "").split(",") if e.strip()]
    entries += [str(line) for line in config.getini("jitchaos_clients")]
    for entry in entries:
        client, sep, value = entry.strip().partition(":")
        if value.startswith("$"):
            value = os.environ.get(value[1:], "")
            if not value:
                raise pytest.UsageError(
                    f"jitchaos_clients: {client}: ${entry.partition('$')[2]} is not set"
                )
        if not sep or not client or not value or "=" in client:
            # Never the entry itself: it may hold the secret.
            raise pytest.UsageError(
                f"jitchaos client entry {len(found) + 1} is not ID:SECRET (or ID:$VAR)"
            )
        found.setdefault(client, value)
    return found


def _policy(settings: dict[str, Any]) -> Any:
    from jitchaos._policy import Policy

    return Policy(
        staleness=settings.get("staleness", 0.0),
        leeway=settings.get("leeway", 0.0),
        key_staleness=settings.get("key_staleness", 0.0),
    )


def _routes(config: pytest.Config) -> dict[str, frozenset[str]]:
    routes = {}
    for line in config.getini("jitchaos_routes"):
        route, sep, scopes = str(line).partition("=")
        method, _, path = route.strip().partition(" ")
        if not sep or not method.isalpha() or not path.startswith("/"):
            raise pytest.UsageError(f"jitchaos_routes: {line!r} is not 'METHOD /path=scopes'")
        routes[f"{method.upper()} {path.strip()}"] = frozenset(scopes.split())
    return routes


@pytest.fixture
def jitchaos_services(
    jitchaos_proxy: ChaosProxy, request: pytest.FixtureRequest
) -> dict[str, str]:
    """Each service named in ``jitchaos_services``, by name: the URL that reaches it through
    the proxy's service side, where every decision it makes is recorded and audited."""
    return {name: jitchaos_proxy.service_url(name) for name in _services(request.config)}


@pytest.fixture
def jit(
    request: pytest.FixtureRequest, _jitchaos_broker: Broker, jitchaos_proxy: ChaosProxy
) -> Iterator[Broker]:
    """The credential broker, holding for this test: ``jit.grant(principal, scopes, ttl)``.

    When the test ends its grants are audited (a finding fails the test); whatever it still
    holds is then revoked.
    """
    marker = request.node.get_closest_marker("jitchaos_policy")
    settings = dict(marker.kwargs) if marker is not None else {}
    _jitchaos_broker.holder = request.node.nodeid
    _jitchaos_broker.max_ttl = settings.get("max_ttl")
    jitchaos_proxy.holder = request.node.nodeid
    request.node.stash[_SINCE] = jitchaos_proxy.history.seq
    try:
        yield _jitchaos_broker
    finally:
        jitchaos_proxy.holder = None
        # What the test still holds it never gave back: recorded as taken back by the fixture.
        _jitchaos_broker.revoke_all(by_holder=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    outcome = yield
    broker = getattr(item, "funcargs", {}).get("jit")
    if broker is not None and "jitchaos._broker" in sys.modules:
        report = _audit(item, broker)
        if not report.ok:
            message = report.format()
            directory = item.config.getoption("jitchaos_notebooks")
            if directory:
                message += f"\nnotebook: {_notebook(item, broker, report, directory)}"
            raise JitchaosAuditFailure(message)
        vacuous = _vacuous(item, broker)
        if vacuous is not None:
            raise JitchaosAuditFailure(f"jitchaos: no verdict on this test's uses: {vacuous}")
    return outcome


def _vacuous(item: pytest.Item, broker: Broker) -> str | None:
    """No verdict without evidence: when every call this test made through the proxy to a
    route answered 5xx, none of its uses was determinate (each inside the policy's windows),
    or no fault it applied was followed by a use of what it changed, the audit judged nothing
    (``@pytest.mark.jitchaos_policy(suppress=[...])`` accepts that, by check name). A test
    that made no call is judged by its grants alone."""
    from jitchaos._report import report
    from jitchaos._vacuity import all_5xx, check_names

    marker = item.get_closest_marker("jitchaos_policy")
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    suppressed = check_names("jitchaos_policy(suppress=...)", settings.get("suppress", ()))
    proxy = getattr(item, "funcargs", {}).get("jitchaos_proxy")
    uses = [
        d
        for d in (proxy.history.decisions if proxy is not None else ())
        if d.holder == item.nodeid and d.fingerprint is not None
    ]
    if not uses:
        return None
    since = item.stash.get(_SINCE, 0)
    faults = [f for f in (proxy.history.faults if proxy is not None else ()) if f.seq > since]
    judged = report(
        broker.ledger,
        sorted([*uses, *faults], key=lambda entry: entry.seq),
        policy=_policy(settings),
        required_scopes=_test_routes(item, settings),
    )
    if "all-5xx" not in suppressed:
        found = all_5xx(judged.calls)
        if found is not None:
            return found
    if "none-determinate" not in suppressed and not judged.judged:
        return (
            f"none of the {len(uses)} uses through the proxy was determinate (must-allow or "
            "must-deny): each fell inside the policy's windows or answered 5xx, so the audit "
            "judged nothing (suppress: none-determinate)"
        )
    if "faults-unused" not in suppressed and judged.faults and not judged.faults_followed:
        return (
            f"none of the {judged.faults} faults this test applied was followed by a use of "
            "what it changed: the test never saw the service handle one (suppress: "
            "faults-unused)"
        )
    return None


def _test_routes(item: pytest.Item, settings: dict[str, Any]) -> Any:
    """The scopes a test's routes need: its marker's, else the ini's, else None."""
    routes = settings.get("scopes")
    return routes if routes is not None else item.config.stash.get(_ROUTES, None) or None


def _audit(item: pytest.Item, broker: Broker) -> PostTestAudit:
    from jitchaos._post_audit import audit_grants

    marker = item.get_closest_marker("jitchaos_policy")
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    policy = _policy(settings)
    proxy = getattr(item, "funcargs", {}).get("jitchaos_proxy")  # jit depends on it
    decisions = proxy.history.decisions if proxy is not None else ()
    write = getattr(broker.ledger.audit, "write_decision", None)
    if write is not None:  # the log then holds everything `jitchaos audit` needs
        for decision in decisions:
            if decision.holder == item.nodeid:
                write(decision)
    routes = _test_routes(item, settings)
    judge = getattr(broker.ledger.audit, "write_judging", None)
    if judge is not None:
        from jitchaos._audit import Judging
        from jitchaos._checks import route_scopes

        judge(Judging(item.nodeid, policy, route_scopes("scopes", routes) if routes else None))
    if routes is None and any(d.holder == item.nodeid for d in decisions):
        item.warn(
            JitchaosConfigWarning(
                "jitchaos: no route scopes (ini jitchaos_routes or "
                "@pytest.mark.jitchaos_policy(scopes=...)): uses were checked against their "
                "window only, not their scopes"
            )
        )
    return audit_grants(
        broker.ledger,
        decisions,
        at=broker.clock.now(),
        policy=policy,
        holder=item.nodeid,
        required_scopes=routes,
    )


def _notebook(item: pytest.Item, broker: Broker, report: PostTestAudit, directory: str) -> str:
    from jitchaos._notebook import audit_notebook, ready_notebook, write_notebook

    marker = item.get_closest_marker("jitchaos_policy")
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    proxy = getattr(item, "funcargs", {}).get("jitchaos_proxy")
    decisions = [
        d
        for d in (proxy.history.decisions if proxy is not None else ())
        if d.holder == item.nodeid
    ]
    policy = _policy(settings)
    routes = _test_routes(item, settings)
    notebook = audit_notebook(
        broker.ledger,
        decisions,
        report,
        holder=item.nodeid,
        policy=policy,
        required_scopes=routes,
    )
    why_not = ready_notebook(notebook)  # opens with its findings and timeline drawn
    path = write_notebook(notebook, directory, item.nodeid)
    if why_not is not None:
        return f"{path} (not run: {why_not})"
    return f"{path} (run: outputs and timeline inside)"
