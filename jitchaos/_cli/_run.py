"""``jitchaos run``: run a catalogue scenario against a service."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jitchaos._cli._args import (
    UsageError,
    address_arg,
    credentials_arg,
    positive_int,
    progress_line,
    seconds_arg,
    user_arg,
)
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._cli._args import Commands


def add(commands: Commands) -> None:
    """The ``run`` command's arguments."""
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
    run.add_argument(
        "--service",
        required=True,
        metavar="URL",
        help="the running service (for a client scenario, a ClientChaosMachine: the running "
        "client app, whose API is the proxy's --service-listen)",
    )
    run.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="'METHOD /path=SCOPES'",
        help="a route and the scopes it needs, comma-separated (repeatable; default: the "
        "scenario's own routes)",
    )
    run.add_argument(
        "--policy",
        metavar="FILE",
        help="a JSON object of Policy fields, over the scenario's own policy",
    )
    run.add_argument(
        "--listen",
        type=address_arg,
        default=("127.0.0.1", 8790),
        metavar="HOST:PORT",
        help="the IdP side's address the service uses (default 127.0.0.1:8790)",
    )
    run.add_argument(
        "--control-listen",
        type=address_arg,
        metavar="HOST:PORT",
        help="the control API's address (default: a free port on --listen's host)",
    )
    run.add_argument(
        "--service-listen",
        type=address_arg,
        metavar="HOST:PORT",
        help="where the proxy fronts the service (default: a free port on --listen's host)",
    )
    run.add_argument(
        "--upstream",
        metavar="URL",
        help="a real OpenID provider (issuer or discovery URL): run in the staging world, on "
        "the wall clock; the service takes the provider's issuer as iss",
    )
    run.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET[:SCOPES]",
        help="a client of --upstream tokens are granted to (repeatable; default: one "
        "registered per example, where the provider offers RFC 7591 registration)",
    )
    run.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="another origin (scheme://host[:port]) --upstream's discovery may put endpoints "
        "on (repeatable); any other is refused",
    )
    run.add_argument(
        "--max-wait",
        type=seconds_arg,
        metavar="SECONDS",
        help="the longest one wall-clock wait may be (default: the scenario's max_wait, 60)",
    )
    run.add_argument(
        "--shrink-budget",
        type=seconds_arg,
        metavar="SECONDS",
        help="the seconds shrinking may take on the wall clock (default: the scenario's "
        "shrink_budget, 90)",
    )
    run.add_argument(
        "--suppress",
        action="append",
        default=[],
        choices=("all-5xx", "none-determinate", "faults-unused"),
        metavar="CHECK",
        help="a vacuity check not to run: all-5xx, none-determinate or faults-unused "
        "(repeatable); a run that judged nothing otherwise fails (exit 1)",
    )
    run.add_argument(
        "--require-coverage",
        action="append",
        default=[],
        metavar="STATE[:FAULT[:ROUTE]]",
        help="a coverage cell the run must judge at least one use in (repeatable; * for any "
        "part: 'revoked', 'revoked:revoke', 'rotated-key:*:GET /read'); a run that leaves one "
        "empty fails (exit 1)",
    )
    run.add_argument(
        "--report",
        metavar="FILE",
        help="also write the outcome, the run report and its coverage as JSON to FILE",
    )
    run.add_argument("--examples", type=positive_int, default=100, help="examples to run")
    run.add_argument("--steps", type=positive_int, default=10, help="steps per example")
    wiring = run.add_argument_group(
        "wiring of the embedded IdP",
        "what the service (or client) under test is configured with; each defaults to the "
        "scenario's class setting of the same name (docs/configuration.md)",
    )
    wiring.add_argument("--audience", metavar="AUD", help="aud of access tokens (jitchaos)")
    wiring.add_argument(
        "--ttl",
        dest="access_ttl",
        type=positive_int,
        metavar="SECONDS",
        help="access-token lifetime (300)",
    )
    wiring.add_argument(
        "--refresh-ttl",
        type=positive_int,
        metavar="SECONDS",
        help="refresh-token lifetime (86400)",
    )
    wiring.add_argument(
        "--grant-client",
        type=credentials_arg,
        metavar="ID:SECRET",
        help="the client grants and logins are for (machine:machine-secret)",
    )
    wiring.add_argument(
        "--introspection-client",
        type=credentials_arg,
        metavar="ID:SECRET",
        help="the client the service introspects with (machine-api:machine-api-secret)",
    )
    wiring.add_argument(
        "--app-client",
        type=credentials_arg,
        metavar="ID:SECRET",
        help="the client a client app under test logs in as (app:app-secret)",
    )
    wiring.add_argument(
        "--user",
        dest="users",
        action="append",
        type=user_arg,
        metavar="NAME:SCOPES",
        help="a user who logs in, with the scopes they may grant (repeatable; default alice "
        "with every scope, bob with the first)",
    )


def run(args: argparse.Namespace) -> int:
    from jitchaos._run import load_policy, load_scenario, parse_route, run_scenario

    folder = Path(args.report).parent if args.report is not None else None
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--report {args.report!r}: there is no directory {str(folder)!r}")
    try:
        scenario = load_scenario(args.scenario)
        routes = dict(parse_route(text) for text in args.route) or None
        policy = (
            load_policy(args.policy, base=scenario.policy) if args.policy is not None else None
        )
        outcome = run_scenario(
            scenario,
            service=args.service,
            routes=routes,
            policy=policy,
            listen=args.listen,
            control_listen=args.control_listen,
            service_listen=args.service_listen,
            examples=args.examples,
            steps=args.steps,
            progress=progress_line(),
            upstream=args.upstream,
            clients=args.client,
            max_wait=args.max_wait,
            shrink_budget=args.shrink_budget,
            suppress=args.suppress,
            allow_origins=args.allow_origin,
            require_coverage=args.require_coverage,
            wiring={
                name: value
                for name in (
                    "audience",
                    "access_ttl",
                    "refresh_ttl",
                    "grant_client",
                    "introspection_client",
                    "app_client",
                    "users",
                )
                if (value := getattr(args, name)) is not None
            },
        )
    except (InvalidArgument, TypeError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot listen: {error.strerror or error}") from None
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(outcome.format())
    if args.report is not None:
        try:
            Path(args.report).write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
        except OSError as error:
            raise UsageError(f"cannot write --report {args.report!r}: {error}") from None
    return 0 if outcome.failure is None else 1
