"""``jitchaos faults``: list the fault catalogue."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from jitchaos.faults import FAULTS

if TYPE_CHECKING:
    from jitchaos._cli._args import Commands


def add(commands: Commands) -> None:
    """The ``faults`` command's arguments."""
    commands.add_parser(
        "faults",
        help="list the registered faults",
        description="List the registered faults, one line each.",
    )


def run(args: argparse.Namespace) -> int:
    width = max(len(name) for name in FAULTS)
    for name, fault in FAULTS.items():
        print(f"{name:<{width}}  {fault.summary}")
    return 0
