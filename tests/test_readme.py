"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})  # noqa: S102


@pytest.mark.parametrize("page", sorted((README.parent / "docs").glob("*.md")), ids=str)
def test_docs_pages_name_only_files_that_exist(page: Path) -> None:
    text = page.read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        exec(compile(block, str(page), "exec"), {})  # noqa: S102
    for named in re.findall(r"`((?:jitchaos|tests|bench|examples)/[\w/.]+\.py)`", text):
        assert (README.parent / named).is_file(), named


def test_make_targets_named_in_the_readme_exist() -> None:
    makefile = (README.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README.read_text(), flags=re.MULTILINE):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target


def test_json_examples_are_schedules() -> None:
    import json

    from jitchaos import Schedule

    blocks = re.findall(r"```json\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        schedule = Schedule.from_json(json.loads(block))
        assert len(schedule.entries) == 4
