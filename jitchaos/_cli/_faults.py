"""``jitchaos faults``: list the fault catalogue."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from jitchaos.faults import FAULTS

if TYPE_CHECKING:
    pass


def add(commands: Any) -> None:
    """The ``faults`` command's arguments."""
    commands.add_parser(
        "faults",
        help="list the registered faults",
        description="List the registered faults, one line each.",
    )


def _run_faults(args: argparse.Namespace) -> int:
    width = max(len(name) for name in FAULTS)
    for name, fault in FAULTS.items():
        print(f"{name:<{width}}  {fault.summary}")
    return 0


run = _run_faults
