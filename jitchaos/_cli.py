"""The ``jitchaos`` command: ``idp`` serves the embedded IdP, ``audit`` reads an audit log,
``faults`` lists the fault catalogue.

User mistakes end in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from jitchaos._audit import encode_event, read_audit
from jitchaos._keys import ALGORITHMS
from jitchaos.errors import AuditError, AuditLogError, ConfigError
from jitchaos.faults import FAULTS
from jitchaos.idp import EmbeddedIdP, IdPConfig, parse_client, parse_user

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
    idp.add_argument("--algorithm", choices=ALGORITHMS, default="RS256")
    idp.add_argument(
        "--audit",
        metavar="FILE",
        default=None,
        help="append every ledger event to this JSON Lines audit log",
    )

    commands.add_parser(
        "faults",
        help="list the registered faults",
        description="List the registered faults, one line each.",
    )

    audit = commands.add_parser(
        "audit",
        help="report open grants and bad lines of an audit log",
        description="Read an audit log; exit 0 when every grant was "
        "closed, 1 on findings, 2 when it cannot be read.",
    )
    audit.add_argument("file", metavar="FILE")
    audit.add_argument(
        "--at",
        type=_time,
        default=None,
        help="reference time for open grants (default: the last event)",
    )
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
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


def _run_audit(args: argparse.Namespace) -> int:
    try:
        report = read_audit(args.file, at=args.at)
    except AuditLogError as error:
        raise _UsageError(str(error)) from None
    if args.json:
        print(
            json.dumps(
                {
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
                },
                indent=2,
            )
        )
    else:
        print(report.format())
    return 0 if report.ok else 1


def _run_faults(args: argparse.Namespace) -> int:
    width = max(len(name) for name in FAULTS)
    for name, fault in FAULTS.items():
        print(f"{name:<{width}}  {fault.summary}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    runners = {"idp": _run_idp, "audit": _run_audit, "faults": _run_faults}
    try:
        return runners[args.command](args)
    except _UsageError as error:
        print(f"jitchaos {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
