"""``jitchaos proxy``: run the chaos proxy in front of an IdP and services."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
from typing import TYPE_CHECKING

from jitchaos._cli._args import (
    UsageError,
    add_idp_config,
    address_arg,
    config_value,
    fault_kinds,
    port_arg,
    positive_int,
    rate_arg,
    service_arg,
    time_arg,
)
from jitchaos._cli._serve import freeze_survivors, run_loop
from jitchaos._clock import OffsetClock
from jitchaos._schedule import Schedule
from jitchaos.errors import AuditError, ConfigError, InvalidArgument
from jitchaos.idp import IdPConfig, parse_client, parse_user

if TYPE_CHECKING:
    from jitchaos._audit import Judging
    from jitchaos._cli._args import Commands
    from jitchaos.proxy import ChaosProxy


def add(commands: Commands) -> None:
    """The ``proxy`` command's arguments."""
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
        type=service_arg,
        help="a service under test, fronted on its own listener (PORT, default a free one); "
        "repeatable",
    )
    proxy.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another origin (scheme://host[:port]) the upstream's discovery may put endpoints "
        "on (repeatable); any other is refused at start-up: credentials and tokens go only to "
        "the upstream",
    )
    proxy.add_argument(
        "--listen",
        type=address_arg,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="the IdP side's address (default 127.0.0.1:0); services and the control API "
        "bind the same host",
    )
    proxy.add_argument(
        "--control",
        type=port_arg,
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
        type=rate_arg,
        default=None,
        help="with --seed: chance that a request triggers a fault (0-1)",
    )
    proxy.add_argument(
        "--faults",
        type=fault_kinds,
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
        type=time_arg,
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
        "--horizon",
        type=time_arg,
        metavar="SECONDS",
        help="with --audit: let grants closed that long ago, and decisions and faults that old, "
        "leave memory (the log keeps them), so a proxy can run for days",
    )
    proxy.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="'METHOD /path=SCOPES'",
        help="with --audit: a route and the scopes it needs (repeatable), written into the log "
        "so jitchaos audit judges each use by them",
    )
    proxy.add_argument(
        "--policy",
        metavar="FILE",
        help="with --audit: a JSON object of Policy fields (staleness, leeway, ...) written into "
        "the log for jitchaos audit (default: every window 0)",
    )
    proxy.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:SCOPES",
        type=config_value(parse_client),
        help="(embedded) a client and its scopes (repeatable)",
    )
    proxy.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:SCOPES",
        type=config_value(parse_user),
        help="(embedded) a test user (repeatable)",
    )
    proxy.add_argument("--ttl", type=positive_int, default=300, help="(embedded) token TTL")
    add_idp_config(proxy)


def run(args: argparse.Namespace) -> int:
    from jitchaos.proxy import ChaosProxy

    schedule = _proxy_schedule(args)
    judging = _judging(args)
    if args.horizon is not None and args.audit is None:
        raise UsageError("--horizon lets what the --audit log keeps leave memory: give --audit")
    upstream: str | IdPConfig = args.upstream
    if args.upstream == "embedded":
        if not args.client:
            raise UsageError("--upstream embedded needs at least one --client ID:SECRET:SCOPES")
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
            raise UsageError(str(error)) from None
    elif args.client or args.user:
        raise UsageError("--client and --user configure only --upstream embedded")
    names = [name for name, _, _ in args.service]
    if len(set(names)) != len(names):
        raise UsageError(f"--service names must differ (got {', '.join(names)})")
    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    server_tls = None
    if args.cert is not None:
        try:
            server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_tls.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(f"cannot load --cert/--key: {error}") from None
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
            allow_origins=args.allow_origin,
            horizon=args.horizon,
        )
        if judging is not None:
            # How the run judges uses, first in the log: jitchaos audit on the file alone
            # then judges them as the driver's own checks would.
            from jitchaos._audit import AuditLog

            log = proxy.ledger.audit
            assert isinstance(log, AuditLog)  # --audit FILE gives the ledger one
            log.write_judging(judging)
    except (InvalidArgument, AuditError) as error:
        raise UsageError(f"{error}") from None
    host, port = args.listen
    ports = {name: service_port for name, _, service_port in args.service}
    return run_loop(
        _serve_proxy(proxy, host, port, args.control, ports, server_tls, generated=not secret)
    )


def _judging(args: argparse.Namespace) -> Judging | None:
    """The judging record ``--route`` and ``--policy`` describe, for the ``--audit`` log."""
    from jitchaos._audit import Judging
    from jitchaos._policy import Policy
    from jitchaos._run import load_policy, parse_route

    if args.audit is None:
        if args.route or args.policy is not None:
            raise UsageError("--route and --policy are written into the --audit log: give --audit")
        return None
    try:
        routes = dict(parse_route(text) for text in args.route) or None
        policy = load_policy(args.policy, base=Policy()) if args.policy is not None else Policy()
    except InvalidArgument as error:
        raise UsageError(str(error)) from None
    return Judging(None, policy, routes)


def _proxy_schedule(args: argparse.Namespace) -> Schedule | None:
    if args.seed is None and (args.rate is not None or args.faults is not None):
        raise UsageError("--rate and --faults go with --seed")
    if args.seed is not None:
        if args.rate is None or args.faults is None:
            raise UsageError("--seed needs --rate R and --faults KIND,KIND")
        return Schedule.from_seed(args.seed, rate=args.rate, faults=args.faults)
    if args.schedule is None:
        return None
    try:
        with open(args.schedule, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read --schedule {args.schedule}: {error}") from None
    try:
        return Schedule.loads(text)
    except InvalidArgument as error:
        raise UsageError(f"--schedule {args.schedule}: {error}") from None


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
        raise UsageError(f"cannot listen on {host}: {error.strerror or error}") from None
    except InvalidArgument as error:  # an upstream whose endpoints are elsewhere
        raise UsageError(str(error)) from None
    # What is loaded by now (modules, keys, the schedule: tens of thousands of entries for a
    # long run) lives as long as the process: frozen, like what later survives.
    freeze_survivors()
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
