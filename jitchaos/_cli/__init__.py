"""The ``jitchaos`` command: ``idp`` serves the embedded IdP, ``proxy`` runs the chaos proxy,
``run`` runs a catalogue scenario against a service, ``demo`` shows a known bug found,
``repro`` writes a saved failure's notebook, ``audit`` reads an audit log, ``faults`` lists the
fault catalogue. One module per command.

User mistakes end in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from importlib import metadata

from jitchaos._cli import _audit, _demo, _faults, _idp, _proxy, _repro, _run
from jitchaos._cli._args import Parser, UsageError

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


def _build_parser() -> Parser:
    parser = Parser(
        prog="jitchaos",
        description="Chaos testing for services whose credentials change under them: "
        "short-lived, revoked and narrowed tokens.",
    )
    try:
        version = metadata.version("jitchaos")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        version = "unknown"
    parser.add_argument("--version", action="version", version=f"jitchaos {version}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add(commands)
    return parser


def _unknown_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Options the command does not have: named as such, before argparse would complain about
    a required option they may have been meant to be."""
    if not argv:
        return []
    commands = next(
        (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None
    )
    command = commands.choices.get(argv[0]) if commands is not None else None
    if command is None:
        return []
    known = list(command._option_string_actions)
    unknown = []
    for word in argv[1:]:
        if word == "--":
            break
        name = word.split("=", 1)[0]
        if not name.startswith("-") or name == "-" or re.fullmatch(r"-\d[\d.]*", name):
            continue  # a value, a negative number or stdin
        if not any(option.startswith(name) for option in known):
            unknown.append(name)
    return unknown


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    unknown = _unknown_options(parser, words)
    if unknown:
        print(
            f"jitchaos {words[0]}: error: unrecognized arguments: {' '.join(unknown)}",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(words)
    try:
        status: int = COMMANDS[args.command].run(args)
        return status
    except UsageError as error:
        print(f"jitchaos {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
