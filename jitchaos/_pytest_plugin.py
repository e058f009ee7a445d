"""The pytest plugin: just-in-time credentials per test, audited when the test ends.

Fixtures: ``jit`` (the broker, holding for the current test), ``jitchaos_idp``,
``jitchaos_proxy`` and ``jitchaos_clock`` (one of each per worker process). A test that ends
holding a credential, lets another test use one, or had one accepted outside its window or
scopes fails with the audit report. Options: ``--jitchaos-audit PATH`` keeps the audit log
(one file per xdist worker), ``--jitchaos-upstream URL`` takes credentials from a real IdP
(client id and secret from ``$JITCHAOS_CLIENT_ID`` and ``$JITCHAOS_CLIENT_SECRET``). The marker
``@pytest.mark.jitchaos_policy(staleness=..., leeway=..., max_ttl=..., scopes={...})`` sets a
test's policy, lease cap and the scopes its service's routes need.
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

__all__ = ["JitchaosAuditFailure"]

_CLIENT = "jitchaos"
_BROKER = pytest.StashKey[object]()


class JitchaosAuditFailure(AssertionError):
    """A test broke least privilege; the message is the post-test audit report."""


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
    parser.addini("jitchaos_users", "users the embedded IdP knows", default="alice bob")
    parser.addini(
        "jitchaos_services",
        "services the proxy fronts, NAME=URL, one per line",
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
        "jitchaos_policy(staleness=0, leeway=0, max_ttl=None, scopes=None): the policy the "
        "post-test audit applies, the lease cap of the test's grants, and the scopes each "
        "'METHOD /path' needs",
    )


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
    from jitchaos.idp import ClientConfig, EmbeddedIdP, IdPConfig, UserConfig

    if request.config.getoption("jitchaos_upstream"):
        yield None
        return
    scopes = set(request.config.getini("jitchaos_scopes").split()) | {"openid"}
    names = request.config.getini("jitchaos_users").split()
    clients: Any = (ClientConfig(_CLIENT, _jitchaos_secret, scopes),)
    users: Any = tuple(UserConfig(name, scopes) for name in names)
    config = IdPConfig(clients=clients, users=users)
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

    services = {}
    for line in request.config.getini("jitchaos_services"):
        name, sep, url = str(line).partition("=")
        if not sep:
            raise pytest.UsageError(f"jitchaos_services: {line!r} is not NAME=URL")
        services[name.strip()] = url.strip()
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
        client_id = os.environ.get("JITCHAOS_CLIENT_ID", "")
        secret = os.environ.get("JITCHAOS_CLIENT_SECRET", "")
        if not client_id or not secret:
            raise pytest.UsageError(
                "--jitchaos-upstream needs $JITCHAOS_CLIENT_ID and $JITCHAOS_CLIENT_SECRET"
            )
    else:
        client_id, secret = _CLIENT, _jitchaos_secret
    log = AuditLog(_audit_path(request.config, tmp_path_factory))
    broker = Broker(jitchaos_proxy, client_id=client_id, client_secret=secret, audit=log)
    request.config.stash[_BROKER] = broker
    try:
        yield broker
    finally:
        log.close()


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
    try:
        yield _jitchaos_broker
    finally:
        jitchaos_proxy.holder = None
        _jitchaos_broker.revoke_all()


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
    return outcome


def _audit(item: pytest.Item, broker: Broker) -> PostTestAudit:
    from jitchaos._policy import Policy
    from jitchaos._post_audit import audit_grants

    marker = item.get_closest_marker("jitchaos_policy")
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    policy = Policy(staleness=settings.get("staleness", 0.0), leeway=settings.get("leeway", 0.0))
    proxy = getattr(item, "funcargs", {}).get("jitchaos_proxy")  # jit depends on it
    decisions = proxy.history.decisions if proxy is not None else ()
    write = getattr(broker.ledger.audit, "write_decision", None)
    if write is not None:  # the log then holds everything `jitchaos audit` needs
        for decision in decisions:
            if decision.holder == item.nodeid:
                write(decision)
    return audit_grants(
        broker.ledger,
        decisions,
        at=broker.clock.now(),
        policy=policy,
        holder=item.nodeid,
        required_scopes=settings.get("scopes"),
    )


def _notebook(item: pytest.Item, broker: Broker, report: PostTestAudit, directory: str) -> str:
    from jitchaos._notebook import audit_notebook, write_notebook
    from jitchaos._policy import Policy

    marker = item.get_closest_marker("jitchaos_policy")
    settings: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    proxy = getattr(item, "funcargs", {}).get("jitchaos_proxy")
    decisions = [
        d
        for d in (proxy.history.decisions if proxy is not None else ())
        if d.holder == item.nodeid
    ]
    policy = Policy(staleness=settings.get("staleness", 0.0), leeway=settings.get("leeway", 0.0))
    notebook = audit_notebook(broker.ledger, decisions, report, holder=item.nodeid, policy=policy)
    return str(write_notebook(notebook, directory, item.nodeid))
