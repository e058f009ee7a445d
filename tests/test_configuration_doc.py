"""docs/configuration.md is the one reference table of settings: every machine attribute,
``jitchaos run`` option and pytest ini option it names exists, and every wiring setting of
the code is in it."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest

from jitchaos import AuthChaosMachine, ClientChaosMachine
from jitchaos._worlds import Wiring
from tests.common.cli import run_cli

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _rows() -> list[list[str]]:
    rows = []
    for line in PAGE.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("| setting") and "---" not in line:
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_machine_attribute_named_exists() -> None:
    names = {
        match
        for row in _rows()
        for match in re.findall(r"`(\w+)`", row[1])
        if match not in ("Policy",)
    }
    assert names
    declared = {
        name
        for machine in (AuthChaosMachine, ClientChaosMachine)
        for klass in machine.__mro__
        for name in (*vars(klass), *getattr(klass, "__annotations__", {}))
    }
    for name in names:
        assert name in declared, name


def test_every_wiring_setting_is_in_the_table() -> None:
    named = {m for row in _rows() for m in re.findall(r"`(\w+)`", row[1])}
    for field in attrs.fields_dict(Wiring):
        assert field in named, field


def test_every_run_option_named_exists() -> None:
    help_text = run_cli("run", "--help").stdout
    options = {m for row in _rows() for m in re.findall(r"(--[a-z-]+)", row[2])}
    assert len(options) > 10
    for option in options:
        assert option in help_text, option


def test_every_ini_option_named_exists(pytestconfig: pytest.Config) -> None:
    inis = {m for row in _rows() for m in re.findall(r"`(jitchaos_\w+)`", row[3])}
    assert len(inis) >= 6
    for name in inis:
        pytestconfig.getini(name)  # a ValueError for an ini option the plugin did not add
