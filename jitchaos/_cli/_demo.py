"""``jitchaos demo``: find a known bug, write its notebook, clear its twin."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from jitchaos._cli._args import (
    UsageError,
    progress_line,
)
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._cli._args import Commands


def add(commands: Commands) -> None:
    """The ``demo`` command's arguments."""
    demo = commands.add_parser(
        "demo",
        help="watch jitchaos find a planted bug in a known-bug service, then not in its fix",
        description="Run the stateful machine against a known-bug service (jitchaos.known_bugs, "
        "in the package): the shrunk failure as a short story, a repro notebook, then the "
        "correct twin.",
    )
    demo.add_argument(
        "name", nargs="?", default="introspection_cache", help="the service (see --list)"
    )
    demo.add_argument("--list", action="store_true", help="list the known-bug services")
    demo.add_argument(
        "--notebooks",
        default=".jitchaos/notebooks",
        metavar="DIR",
        help="where the notebook goes (default .jitchaos/notebooks, which git ignores)",
    )


def run(args: argparse.Namespace) -> int:
    from jitchaos._demo import DEMOS, run_demo

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
            args.name, notebooks=args.notebooks, out=out, progress=progress_line()
        )
    except InvalidArgument as error:
        raise UsageError(str(error)) from None
    return 0 if buggy.record is not None and twin.record is None else 1
