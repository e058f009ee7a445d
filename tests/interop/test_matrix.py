"""The conformance matrix: every client stack against every target (tests/interop/stacks.py),
and the table of it in docs/idp.md (tests/interop/table.py) saying what the matrix finds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.stacks import CHECKS, STACKS
from tests.interop.table import TARGET_TITLES, cell, checked, readme_rows
from tests.interop.targets import TARGETS, Target, running

pytestmark = pytest.mark.usefixtures("insecure_transport")

APPLICABLE = {
    "pyjwt": {"discovery", "token", "rotation"},
    "joserfc": {"discovery", "token", "rotation"},
    "jose": {"discovery", "token", "rotation"},
    "jwks-rsa": {"discovery", "token", "rotation"},
    "authlib-resource": {"discovery", "token", "rotation", "introspection"},
    "authlib-client": set(CHECKS),
    "openid-client": set(CHECKS),
}


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    with running(request.param) as started:
        yield started


@pytest.mark.parametrize("stack", list(STACKS))
def test_stack_reads_everything_the_target_serves(target: Target, stack: str) -> None:
    language, title, run = STACKS[stack]
    outcomes = run(target)
    assert {check for check, outcome in outcomes.items() if outcome != "n/a"} == APPLICABLE[stack]
    failures = {
        check: outcome for check, outcome in outcomes.items() if outcome.startswith("fail")
    }
    assert not failures
    row = readme_rows().get(title)
    assert row is not None, f"docs/idp.md's interop table has no row for {title}"
    assert row[0] == language
    assert row[2] == checked(outcomes), "rerun python -m tests.interop.table"
    assert row[3 + TARGETS.index(target.name)] == cell(outcomes) == "pass"


def test_the_readme_table_has_exactly_the_matrix() -> None:
    rows = readme_rows()
    assert set(rows) == {title for _language, title, _run in STACKS.values()}
    assert all(len(cells) == 3 + len(TARGET_TITLES) for cells in rows.values())
