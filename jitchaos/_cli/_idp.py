"""``jitchaos idp``: serve the embedded OpenID Connect IdP."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING

from jitchaos._cli._args import (
    UsageError,
    add_idp_config,
    config_value,
    port_arg,
    positive_int,
)
from jitchaos._cli._serve import freeze_survivors
from jitchaos.errors import AuditError, ConfigError
from jitchaos.idp import EmbeddedIdP, IdPConfig, parse_client, parse_user

if TYPE_CHECKING:
    from jitchaos._cli._args import Commands


def add(commands: Commands) -> None:
    """The ``idp`` command's arguments."""
    idp = commands.add_parser(
        "idp",
        help="serve the embedded OpenID Connect IdP",
        description="Serve the embedded OpenID Connect IdP until SIGTERM or Ctrl-C.",
    )
    idp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    idp.add_argument("--port", type=port_arg, default=0, help="port (default 0: a free one)")
    idp.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET:SCOPES",
        type=config_value(parse_client),
        help="a client and the comma-separated scopes it may ask for; an empty "
        "SECRET makes a public client (repeatable, at least one)",
    )
    idp.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:SCOPES",
        type=config_value(parse_user),
        help="a test user for authorization_code; login_hint picks it (repeatable)",
    )
    idp.add_argument(
        "--ttl",
        type=positive_int,
        default=300,
        help="access-token lifetime in seconds (default 300)",
    )
    idp.add_argument(
        "--max-ttl",
        type=positive_int,
        default=None,
        help="largest lifetime a token request may ask for with ttl= "
        "(default: the larger of --ttl and 3600)",
    )
    idp.add_argument(
        "--refresh-ttl",
        type=positive_int,
        default=86400,
        help="refresh-token lifetime in seconds (default 86400)",
    )
    idp.add_argument("--audience", default="jitchaos", help="aud of access tokens")
    idp.add_argument(
        "--issuer", default=None, help="iss of tokens (default: the URL it is served at)"
    )
    add_idp_config(idp)
    idp.add_argument(
        "--audit",
        metavar="FILE",
        default=None,
        help="append every ledger event to this JSON Lines audit log",
    )


def run(args: argparse.Namespace) -> int:
    if not args.client:
        raise UsageError("give at least one --client ID:SECRET:SCOPES")
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
        raise UsageError(str(error)) from None
    return asyncio.run(_serve(idp, args.host, args.port))


async def _serve(idp: EmbeddedIdP, host: str, port: int) -> int:
    try:
        await idp.start(host, port)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    freeze_survivors()
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
