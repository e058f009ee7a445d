"""The ``jitchaos`` command: ``idp`` serves the embedded IdP, ``proxy`` runs the chaos proxy,
``audit`` reads an audit log, ``faults`` lists the fault catalogue.

User mistakes end in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import json
import math
import os
import signal
import ssl
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from jitchaos._audit import encode_event, read_audit
from jitchaos._clock import OffsetClock
from jitchaos._keys import ALGORITHMS
from jitchaos._schedule import Schedule
from jitchaos.errors import AuditError, AuditLogError, ConfigError, InvalidArgument
from jitchaos.faults import FAULTS
from jitchaos.idp import EmbeddedIdP, IdPConfig, parse_client, parse_user

if TYPE_CHECKING:
    from jitchaos.proxy import ChaosProxy

__all__ = ["main"]

_T = TypeVar("_T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _UsageError(Exception):
    """A mistake in what the user asked for: one line, exit 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return value


def _time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return value


def _config_value(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _seconds_arg(text: str) -> float:
    value = _time(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be seconds >= 0")
    return value


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), _port(port)


def _service(text: str) -> tuple[str, str, int]:
    name, sep, rest = text.partition("=")
    if not sep or "://" in name:
        name, rest = "service", text
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{name!r} is not a service name (letters, digits, _)")
    url, at, port = rest.rpartition("@")
    if not at or not port.isdigit():
        url, port = rest, "0"
    if not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{rest!r} is not an http(s) URL")
    return name, url, _port(port)


def _rate(text: str) -> float:
    value = _time(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate from 0 to 1")
    return value


def _fault_kinds(text: str) -> list[str]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in FAULTS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {', '.join(unknown) or '(none)'}; known: {', '.join(FAULTS)}"
        )
    return kinds


def _add_idp_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="RS256")
    parser.add_argument(
        "--opaque-tokens",
        action="store_true",
        help="issue opaque access tokens (read only through introspection) instead of JWTs",
    )


def _build_parser() -> _Parser:
    parser = _Parser(prog="jitchaos", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    idp = commands.add_parser(
        "idp",
        help="serve the embedded OpenID Connect IdP",
        description="Serve the embedded OpenID Connect IdP until SIGTERM or Ctrl-C.",
    )
    idp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    idp.add_argument("--port", type=_port, default=0, help="port (default 0: a free one)")
    idp.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:SCOPES",
        type=_config_value(parse_client),
        help="a client and the comma-separated scopes it may ask for; an empty "
        "SECRET makes a public client (repeatable, at least one)",
    )
    idp.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:SCOPES",
        type=_config_value(parse_user),
        help="a test user for authorization_code; login_hint picks it (repeatable)",
    )
    idp.add_argument(
        "--ttl",
        type=_positive_int,
        default=300,
        help="access-token lifetime in seconds (default 300)",
    )
    idp.add_argument(
        "--max-ttl",
        type=_positive_int,
        default=None,
        help="largest lifetime a token request may ask for with ttl= "
        "(default: the larger of --ttl and 3600)",
    )
    idp.add_argument(
        "--refresh-ttl",
        type=_positive_int,
        default=86400,
        help="refresh-token lifetime in seconds (default 86400)",
    )
    idp.add_argument("--audience", default="jitchaos", help="aud of access tokens")
    idp.add_argument(
        "--issuer", default=None, help="iss of tokens (default: the URL it is served at)"
    )
    _add_idp_config(idp)
    idp.add_argument(
        "--audit",
        metavar="FILE",
        default=None,
        help="append every ledger event to this JSON Lines audit log",
    )

    proxy = commands.add_parser(
        "proxy",
        help="run the chaos proxy between services and their IdP",
        description="Run the chaos proxy until SIGTERM or Ctrl-C: services reach their IdP "
        "through it, tests reach the services through it, and faults come from a schedule.",
    )
    proxy.add_argument(
        "--upstream",
        required=True,
        metavar="URL|embedded",
        help="the IdP's issuer or discovery URL, or 'embedded' to run the embedded IdP "
        "(then configured with --client/--user/--ttl as for 'jitchaos idp')",
    )
    proxy.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="[NAME=]URL[@PORT]",
        type=_service,
        help="a service under test, fronted on its own listener (PORT, default a free one); "
        "repeatable",
    )
    proxy.add_argument(
        "--listen",
        type=_address,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="the IdP side's address (default 127.0.0.1:0); services and the control API "
        "bind the same host",
    )
    proxy.add_argument(
        "--control",
        type=_port,
        default=0,
        metavar="PORT",
        help="the control API's port (default 0: a free one)",
    )
    proxy.add_argument(
        "--secret-env",
        default="JITCHAOS_CONTROL_SECRET",
        metavar="NAME",
        help="environment variable holding the control API's secret (default "
        "JITCHAOS_CONTROL_SECRET); when unset one is generated and printed",
    )
    chaos = proxy.add_mutually_exclusive_group()
    chaos.add_argument(
        "--schedule", metavar="FILE", default=None, help="a JSON schedule to execute"
    )
    chaos.add_argument("--seed", type=int, default=None, help="expand this seed into a schedule")
    proxy.add_argument(
        "--rate",
        type=_rate,
        default=None,
        help="with --seed: chance that a request triggers a fault (0-1)",
    )
    proxy.add_argument(
        "--faults",
        type=_fault_kinds,
        default=None,
        metavar="KIND,KIND",
        help="with --seed: which fault kinds to draw (see 'jitchaos faults')",
    )
    proxy.add_argument(
        "--resign",
        action="store_true",
        help="verify upstream JWTs and re-mint them with the proxy's own key",
    )
    proxy.add_argument(
        "--ca-bundle", metavar="FILE", default=None, help="CA certificates for an https upstream"
    )
    proxy.add_argument("--cert", metavar="FILE", default=None, help="TLS certificate (PEM)")
    proxy.add_argument("--key", metavar="FILE", default=None, help="TLS private key (PEM)")
    proxy.add_argument(
        "--upstream-timeout",
        type=_time,
        default=10.0,
        help="seconds the upstream IdP or a service may stay silent before the proxy answers "
        "504 (default 10); a long download that keeps coming is no timeout",
    )
    proxy.add_argument(
        "--audit",
        metavar="FILE",
        default=None,
        help="append the proxy ledger's events to this JSON Lines audit log",
    )
    proxy.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:SCOPES",
        type=_config_value(parse_client),
        help="(embedded) a client and its scopes (repeatable)",
    )
    proxy.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:SCOPES",
        type=_config_value(parse_user),
        help="(embedded) a test user (repeatable)",
    )
    proxy.add_argument("--ttl", type=_positive_int, default=300, help="(embedded) token TTL")
    _add_idp_config(proxy)

    run = commands.add_parser(
        "run",
        help="run a scenario against a running service through the proxy",
        description="Run a scenario (a module defining Scenario, e.g. strategies/NAME.py) "
        "against a running service: the proxy's IdP side listens on --listen (the service "
        "must use it as its IdP and issuer), faults come from the scenario's rules. Prints "
        "the shrunk failure (exit 1) or 'no violation in N examples' (exit 0), then the run "
        "report.",
    )
    run.add_argument("scenario", metavar="SCENARIO.py")
    run.add_argument("--service", required=True, metavar="URL", help="the running service")
    run.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="'METHOD /path=SCOPES'",
        help="a route and the scopes it needs, comma-separated (repeatable; default: the "
        "scenario's own routes)",
    )
    run.add_argument("--policy", metavar="FILE", help="a JSON object of Policy fields")
    run.add_argument(
        "--listen",
        type=_address,
        default=("127.0.0.1", 8790),
        metavar="HOST:PORT",
        help="the IdP side's address the service uses (default 127.0.0.1:8790)",
    )
    run.add_argument("--examples", type=_positive_int, default=100, help="examples to run")
    run.add_argument("--steps", type=_positive_int, default=10, help="steps per example")

    demo = commands.add_parser(
        "demo",
        help="watch jitchaos find a planted bug in a known-bug service, then not in its fix",
        description="Run the stateful machine against a known-bug service from examples/ "
        "(run it from a jitchaos checkout): the shrunk failure as a short story, a repro "
        "notebook, then the correct twin.",
    )
    demo.add_argument(
        "name", nargs="?", default="introspection_cache", help="the service (see --list)"
    )
    demo.add_argument("--list", action="store_true", help="list the known-bug services")
    demo.add_argument(
        "--notebooks", default="notebooks", metavar="DIR", help="where the notebook goes"
    )

    repro = commands.add_parser(
        "repro",
        help="write the repro notebook of a saved failure",
        description="Write the notebook that replays a saved failure (the .json a failing "
        "machine wrote beside its notebook); --execute runs it first so it carries outputs.",
    )
    repro.add_argument("failure", metavar="FAILURE.json")
    repro.add_argument("--out", default="notebooks", metavar="DIR", help="(default notebooks)")
    repro.add_argument("--execute", action="store_true", help="run it on a Jupyter kernel")

    commands.add_parser(
        "faults",
        help="list the registered faults",
        description="List the registered faults, one line each.",
    )

    audit = commands.add_parser(
        "audit",
        help="report open grants and bad lines of an audit log",
        description="Read an audit log; exit 0 when every grant was "
        "closed, 1 on findings, 2 when it cannot be read. FILE may be the path given to "
        "pytest's --jitchaos-audit under xdist: every worker's log (FILE.gw0.jsonl, ...) is "
        "audited.",
    )
    audit.add_argument("file", metavar="FILE")
    audit.add_argument(
        "--at",
        type=_time,
        default=None,
        help="reference time for open grants (default: the last event)",
    )
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument(
        "--staleness",
        type=_seconds_arg,
        default=0.0,
        help="seconds a use may lag a revocation or narrowing (the services' policy)",
    )
    audit.add_argument(
        "--key-staleness",
        type=_seconds_arg,
        default=0.0,
        help="seconds the services' key caches may lag the JWKS (rotations, removals)",
    )
    audit.add_argument(
        "--leeway", type=_seconds_arg, default=0.0, help="clock leeway around exp and nbf"
    )
    return parser


def _run_idp(args: argparse.Namespace) -> int:
    if not args.client:
        raise _UsageError("give at least one --client ID:SECRET:SCOPES")
    try:
        config = IdPConfig(
            clients=args.client,
            users=args.user,
            audience=args.audience,
            access_ttl=args.ttl,
            max_ttl=args.max_ttl or max(args.ttl, 3600),
            refresh_ttl=args.refresh_ttl,
            algorithm=args.algorithm,
            opaque_tokens=args.opaque_tokens,
        )
        idp = EmbeddedIdP(config, audit=args.audit, issuer=args.issuer)
    except (ConfigError, AuditError) as error:
        raise _UsageError(str(error)) from None
    return asyncio.run(_serve(idp, args.host, args.port))


async def _serve(idp: EmbeddedIdP, host: str, port: int) -> int:
    try:
        await idp.start(host, port)
    except OSError as error:
        raise _UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    _freeze_survivors()
    print(f"jitchaos idp: issuer {idp.issuer}", flush=True)
    print(f"jitchaos idp: discovery {idp.discovery_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await idp.stop()
        if idp.ledger.audit is not None:
            close = getattr(idp.ledger.audit, "close", None)
            if close is not None:
                close()
    print("jitchaos idp: stopped", flush=True)
    return 0


def _run_proxy(args: argparse.Namespace) -> int:
    from jitchaos.proxy import ChaosProxy

    schedule = _proxy_schedule(args)
    upstream: str | IdPConfig = args.upstream
    if args.upstream == "embedded":
        if not args.client:
            raise _UsageError("--upstream embedded needs at least one --client ID:SECRET:SCOPES")
        try:
            upstream = IdPConfig(
                clients=args.client,
                users=args.user,
                access_ttl=args.ttl,
                max_ttl=max(args.ttl, 3600),
                algorithm=args.algorithm,
                opaque_tokens=args.opaque_tokens,
            )
        except ConfigError as error:
            raise _UsageError(str(error)) from None
    elif args.client or args.user:
        raise _UsageError("--client and --user configure only --upstream embedded")
    names = [name for name, _, _ in args.service]
    if len(set(names)) != len(names):
        raise _UsageError(f"--service names must differ (got {', '.join(names)})")
    if (args.cert is None) != (args.key is None):
        raise _UsageError("--cert and --key go together")
    server_tls = None
    if args.cert is not None:
        try:
            server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_tls.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as error:
            raise _UsageError(f"cannot load --cert/--key: {error}") from None
    secret = os.environ.get(args.secret_env) or None
    try:
        proxy = ChaosProxy(
            upstream,
            services={name: url for name, url, _ in args.service},
            clock=OffsetClock(),
            resign=args.resign,
            secret=secret,
            schedule=schedule,
            audit=args.audit,
            ca_bundle=args.ca_bundle,
            upstream_timeout=args.upstream_timeout,
        )
    except (InvalidArgument, AuditError) as error:
        raise _UsageError(f"{error}") from None
    host, port = args.listen
    ports = {name: service_port for name, _, service_port in args.service}
    return _run_loop(
        _serve_proxy(proxy, host, port, args.control, ports, server_tls, generated=not secret)
    )


def _proxy_schedule(args: argparse.Namespace) -> Schedule | None:
    if args.seed is None and (args.rate is not None or args.faults is not None):
        raise _UsageError("--rate and --faults go with --seed")
    if args.seed is not None:
        if args.rate is None or args.faults is None:
            raise _UsageError("--seed needs --rate R and --faults KIND,KIND")
        return Schedule.from_seed(args.seed, rate=args.rate, faults=args.faults)
    if args.schedule is None:
        return None
    try:
        with open(args.schedule, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise _UsageError(f"cannot read --schedule {args.schedule}: {error}") from None
    try:
        return Schedule.loads(text)
    except InvalidArgument as error:
        raise _UsageError(f"--schedule {args.schedule}: {error}") from None


def _freeze_survivors() -> Callable[[], None]:
    """Freeze what survives each full collection, for a server process that runs for days.

    The ledger keeps every grant, so the heap grows with the traffic, and CPython's full
    collections walk all of it: behind 90k tokens one paused the proxy for 300 ms, and the pause
    grows with the run. What a full collection leaves is, almost all of it, the ledger and the
    other state the process keeps to its end; frozen, later collections walk only what came
    after (pauses stay near 20 ms). Garbage cycles are collected before each freeze; the cost
    is that a cycle alive at a freeze and dropped later is never collected (a request in
    flight), against the ledger's 1-2 KB per token. Python 3.14's incremental collector
    bounds its pauses itself and reports no generation 2 collections: there only what is
    loaded at the start is frozen. Returns the uninstaller."""

    def after(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()

    gc.callbacks.append(after)
    # What is loaded by now (modules, keys, a schedule of tens of thousands of entries) goes
    # the same way, its garbage collected first: walking a 24k-entry schedule on every full
    # collection cost about 10 us per token request.
    gc.collect()
    return lambda: gc.callbacks.remove(after)


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where it is installed (the standalone proxy's hot path), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or installed without it
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def _serve_proxy(
    proxy: ChaosProxy,
    host: str,
    port: int,
    control_port: int,
    service_ports: dict[str, int],
    server_tls: ssl.SSLContext | None,
    *,
    generated: bool,
) -> int:
    try:
        await proxy.start(
            host,
            port,
            control_port=control_port,
            service_ports=service_ports,
            ssl_context=server_tls,
        )
    except OSError as error:
        raise _UsageError(f"cannot listen on {host}: {error.strerror or error}") from None
    # What is loaded by now (modules, keys, the schedule: tens of thousands of entries for a
    # long run) lives as long as the process: frozen, like what later survives.
    _freeze_survivors()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    upstream = proxy.idp.url if proxy.idp is not None else proxy.upstream_url
    say = "jitchaos proxy:"
    print(f"{say} idp {proxy.url} (upstream {upstream})", flush=True)
    print(f"{say} discovery {proxy.discovery_url}", flush=True)
    for name, target in proxy.services.items():
        print(f"{say} service {name} {proxy.service_url(name)} -> {target}", flush=True)
    print(f"{say} control {proxy.control_url}", flush=True)
    if generated:
        print(f"{say} secret {proxy.secret}", flush=True)
    print(f"{say} schedule {len(proxy.engine.schedule)} entries", flush=True)
    try:
        await stop.wait()
    finally:
        await proxy.stop()
        close = getattr(proxy.ledger.audit, "close", None)
        if close is not None:
            close()
    print(f"{say} stopped", flush=True)
    return 0


def _audit_logs(path: str) -> list[Path]:
    """``path`` itself when it exists, and the per-worker logs pytest-xdist wrote for it
    (``stem.gwN.suffix``, in worker order)."""
    given = Path(path)
    suffix = given.suffix or ".jsonl"
    workers = []
    for candidate in given.parent.glob(f"{glob.escape(given.stem)}.gw*{glob.escape(suffix)}"):
        number = candidate.name[len(given.stem) + 3 : len(candidate.name) - len(suffix)]
        if number.isdigit():
            workers.append((int(number), candidate))
    found = [given] if given.exists() else []
    return found + [candidate for _, candidate in sorted(workers)] or [given]


def _run_audit(args: argparse.Namespace) -> int:
    logs = _audit_logs(args.file)
    results = [_audit_one(args, log) for log in logs]
    if args.json:
        documents = [document for _, document, _ in results]
        print(json.dumps(documents[0] if len(logs) == 1 else {"logs": documents}, indent=2))
    else:
        if len(logs) > 1:
            print(f"{args.file}: {len(logs)} logs ({', '.join(p.name for p in logs)})")
        print("\n".join(text for _, _, text in results))
    return max(code for code, _, _ in results)


def _audit_one(args: argparse.Namespace, path: Path) -> tuple[int, dict[str, Any], str]:
    """Audit one log: (exit code, the JSON document, the text report)."""
    from jitchaos._policy import Policy
    from jitchaos._post_audit import audit_grants

    try:
        report = read_audit(path, at=args.at)
    except AuditLogError as error:
        raise _UsageError(str(error)) from None
    post = None
    if report.ledger is not None and report.at is not None:
        post = audit_grants(
            report.ledger,
            report.decisions,
            at=report.at,
            policy=Policy(
                staleness=args.staleness, leeway=args.leeway, key_staleness=args.key_staleness
            ),
        )
    document = {
        "path": report.path,
        "at": report.at,
        "events": len(report.events),
        "open_grants": [
            {
                "grant_id": g.grant_id,
                "principal": str(g.principal),
                "client_id": g.client_id,
                "scopes": sorted(g.scopes),
                "issued_at": g.issued_at,
            }
            for g in report.open_grants
        ],
        "malformed": [{"line": m.line, "reason": m.reason} for m in report.malformed],
        "last_event": encode_event(report.events[-1]) if report.events else None,
        "decisions": len(report.decisions),
        "findings": [
            {"kind": f.kind, "finding": f.sentence}
            for f in (post.findings if post is not None else ())
        ],
        "notes": list(post.notes if post is not None else ()),
    }
    text = report.format()
    if post is not None and (report.decisions or report.ledger_has_leases):
        text += "\n" + post.format()
    clean = report.ok and (post is None or post.ok)
    return (0 if clean else 1), document, text


def _progress(*, every: int) -> Callable[[int, int, float], None]:
    """One progress line on stderr: rewritten in place on a terminal, else every ``every``
    examples."""
    tty = sys.stderr.isatty()

    def show(examples: int, faults: int, elapsed: float) -> None:
        line = f"{examples} examples, {faults} faults injected, {elapsed:.0f}s"
        if tty:
            print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
        elif examples % every == 0:
            print(line, file=sys.stderr, flush=True)

    return show


def _run_run(args: argparse.Namespace) -> int:
    from jitchaos._run import load_policy, load_scenario, parse_route, run_scenario
    from jitchaos.errors import InvalidArgument

    try:
        scenario = load_scenario(args.scenario)
        routes = dict(parse_route(text) for text in args.route) or None
        policy = load_policy(args.policy) if args.policy is not None else None
        outcome = run_scenario(
            scenario,
            service=args.service,
            routes=routes,
            policy=policy,
            listen=args.listen,
            examples=args.examples,
            steps=args.steps,
            progress=_progress(every=25),
        )
    except InvalidArgument as error:
        raise _UsageError(str(error)) from None
    except OSError as error:
        raise _UsageError(f"cannot listen on {args.listen[0]}:{args.listen[1]}: {error}") from None
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(outcome.format())
    return 0 if outcome.failure is None else 1


def _run_demo(args: argparse.Namespace) -> int:
    from jitchaos._demo import DEMOS, run_demo
    from jitchaos.errors import InvalidArgument

    if args.list:
        width = max(len(name) for name in DEMOS)
        for name, demo in DEMOS.items():
            print(f"{name:<{width}}  {demo.summary}")
        return 0
    tty = sys.stderr.isatty()

    def out(text: str) -> None:
        if tty:
            print("\r", end="", file=sys.stderr)
        print(text, flush=True)

    try:
        buggy, twin = run_demo(
            args.name, notebooks=args.notebooks, out=out, progress=_progress(every=50)
        )
    except InvalidArgument as error:
        raise _UsageError(str(error)) from None
    return 0 if buggy.record is not None and twin.record is None else 1


def _run_repro(args: argparse.Namespace) -> int:
    from jitchaos._failure import write_repro
    from jitchaos._repro import load_failure
    from jitchaos.errors import InvalidArgument

    try:
        failure = load_failure(args.failure)
        path = write_repro(failure, args.out, execute=args.execute)
    except InvalidArgument as error:
        raise _UsageError(str(error)) from None
    except OSError as error:
        raise _UsageError(f"cannot write into {args.out!r}: {error}") from None
    print(path)
    return 0


def _run_faults(args: argparse.Namespace) -> int:
    width = max(len(name) for name in FAULTS)
    for name, fault in FAULTS.items():
        print(f"{name:<{width}}  {fault.summary}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    runners = {
        "idp": _run_idp,
        "proxy": _run_proxy,
        "audit": _run_audit,
        "faults": _run_faults,
        "run": _run_run,
        "demo": _run_demo,
        "repro": _run_repro,
    }
    try:
        return runners[args.command](args)
    except _UsageError as error:
        print(f"jitchaos {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
