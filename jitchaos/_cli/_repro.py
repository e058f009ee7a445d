"""``jitchaos repro``: write (and run) the notebook of a saved failure."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from jitchaos._cli._args import (
    UsageError,
)
from jitchaos.errors import InvalidArgument

if TYPE_CHECKING:
    from jitchaos._cli._args import Commands


def add(commands: Commands) -> None:
    """The ``repro`` command's arguments."""
    repro = commands.add_parser(
        "repro",
        help="write the repro notebook of a saved failure",
        description="Write the notebook that replays a saved failure (the .json a failing "
        "machine wrote beside its notebook); --execute runs it first so it carries outputs.",
    )
    repro.add_argument("failure", metavar="FAILURE.json")
    repro.add_argument("--out", default="notebooks", metavar="DIR", help="(default notebooks)")
    repro.add_argument("--execute", action="store_true", help="run it on a Jupyter kernel")


def run(args: argparse.Namespace) -> int:
    from jitchaos._failure import write_repro
    from jitchaos._repro import load_failure

    try:
        failure = load_failure(args.failure)
        path = write_repro(failure, args.out, execute=args.execute)
    except InvalidArgument as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write into {args.out!r}: {error}") from None
    print(path)
    return 0
