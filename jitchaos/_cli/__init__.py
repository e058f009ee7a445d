"""The ``jitchaos`` command: ``idp`` serves the embedded IdP, ``proxy`` runs the chaos proxy,
``run`` runs a catalogue scenario against a service, ``demo`` shows a known bug found,
``repro`` writes a saved failure's notebook, ``audit`` reads an audit log, ``faults`` lists the
fault catalogue. One module per command.

User mistakes end in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from jitchaos._cli import _audit, _demo, _faults, _idp, _proxy, _repro, _run
from jitchaos._cli._args import _Parser, _UsageError

__all__ = ["main"]

# One module per command: its arguments (add) and what it does (run).
COMMANDS = {
    "idp": _idp,
    "proxy": _proxy,
    "run": _run,
    "demo": _demo,
    "repro": _repro,
    "faults": _faults,
    "audit": _audit,
}


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="jitchaos",
        description="Chaos testing for services whose credentials change under them: "
        "short-lived, revoked and narrowed tokens.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = COMMANDS[args.command].run(args)
        return status
    except _UsageError as error:
        print(f"jitchaos {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
