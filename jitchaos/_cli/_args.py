"""What every command's arguments share: the parser that exits 2 in one line, the usage
error, argument types and the progress line."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TextIO, TypeVar

from jitchaos._checks import address
from jitchaos._keys import ALGORITHMS
from jitchaos.errors import ConfigError, InvalidArgument
from jitchaos.faults import FAULTS

_T = TypeVar("_T")

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
    """Where each command module adds its sub-parser."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A mistake in what the user asked for: one line, exit 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return value


def time_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return value


def config_value(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def seconds_arg(text: str) -> float:
    value = time_arg(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be seconds >= 0")
    return value


def credentials_arg(text: str) -> tuple[str, str]:
    """``ID:SECRET`` (the secret never echoed in the error)."""
    client_id, sep, secret = text.partition(":")
    if not sep or not client_id or not secret or ":" in secret:
        shown = f"{client_id}:***" if sep else client_id
        raise argparse.ArgumentTypeError(f"{shown!r} is not ID:SECRET")
    return client_id, secret


def user_arg(text: str) -> tuple[str, frozenset[str]]:
    """``NAME:scope,scope``."""
    name, sep, scopes = text.partition(":")
    granted = frozenset(s for s in scopes.replace(",", " ").split() if s)
    if not sep or not name or not granted:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:SCOPES (scopes comma-separated)")
    return name, granted


def address_arg(text: str) -> tuple[str, int]:
    try:
        return address("address", text)
    except InvalidArgument:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (port 0-65535)") from None


def service_arg(text: str) -> tuple[str, str, int]:
    name, sep, rest = text.partition("=")
    if not sep or "://" in name:
        name, rest = "service", text
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{name!r} is not a service name (letters, digits, _)")
    url, at, port = rest.rpartition("@")
    if not at or not port.isdigit():
        url, port = rest, "0"
    if not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{rest!r} is not an http(s) URL")
    return name, url, port_arg(port)


def rate_arg(text: str) -> float:
    value = time_arg(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate from 0 to 1")
    return value


def fault_kinds(text: str) -> list[str]:
    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in FAULTS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {', '.join(unknown) or '(none)'}; known: {', '.join(FAULTS)}"
        )
    return kinds


def add_idp_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="RS256")
    parser.add_argument(
        "--opaque-tokens",
        action="store_true",
        help="issue opaque access tokens (read only through introspection) instead of JWTs",
    )


def progress_line(
    *, heartbeat: float = 60.0, stream: TextIO | None = None
) -> Callable[[int, int, int, float], None]:
    """A live progress line on a terminal (examples, faults, violations found so far,
    elapsed), rewritten in place after every example. Not on a terminal (a CI log) it stays
    quiet, but for one line every ``heartbeat`` seconds of a long run (on the wall clock an
    example can last a minute), so that a log shows the run is alive."""
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    shown = [0.0]

    def show(examples: int, faults: int, violations: int, elapsed: float) -> None:
        found = f"{violations} violation kind{'s' if violations != 1 else ''} found"
        line = (
            f"{examples} examples run (shrinking included), {faults} faults, {found}, "
            f"{elapsed:.0f}s"
        )
        if tty:
            print(f"\r{line}   ", end="", file=out, flush=True)
        elif elapsed - shown[0] >= heartbeat:
            shown[0] = elapsed
            print(line, file=out, flush=True)

    return show
