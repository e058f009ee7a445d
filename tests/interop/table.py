"""The table of client stacks in docs/idp.md, written from a run of the whole matrix:

    .venv/bin/python -m tests.interop.table      # runs every stack on every target, rewrites it

``tests/interop/test_matrix.py`` fails when a cell no longer says what the matrix finds.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

from tests.interop.stacks import CHECKS, NODE_DIR, STACKS
from tests.interop.targets import TARGETS, running

PAGE = Path(__file__).parents[2] / "docs" / "idp.md"
BEGIN, END = "<!-- interop-matrix:begin -->", "<!-- interop-matrix:end -->"
TARGET_TITLES = {
    "embedded": "embedded IdP",
    "proxy": "proxy (embedded upstream)",
    "resign": "proxy, re-signing",
}
_PACKAGES = {
    "pyjwt": ("PyJWT",),
    "authlib-resource": ("Authlib", "joserfc"),
    "authlib-client": ("Authlib",),
    "joserfc": ("joserfc",),
    "jose": ("jose",),
    "jwks-rsa": ("express-jwt", "jwks-rsa"),
    "openid-client": ("openid-client",),
}

Results = dict[str, dict[str, dict[str, str]]]
"""stack -> target -> check -> pass | n/a | fail: why"""


def collect() -> Results:
    results: Results = {name: {} for name in STACKS}
    for target_name in TARGETS:
        for name, (_language, _title, run) in STACKS.items():
            with running(target_name) as target:
                results[name][target_name] = run(target)
    return results


def cell(outcomes: dict[str, str]) -> str:
    failed = [check for check, outcome in outcomes.items() if outcome.startswith("fail")]
    return f"fails: {', '.join(failed)}" if failed else "pass"


def checked(outcomes: dict[str, str]) -> str:
    return ", ".join(check for check in CHECKS if outcomes.get(check) != "n/a")


def versions(name: str) -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())["packages"]
    found = []
    for package in _PACKAGES[name]:
        entry = lock.get(f"node_modules/{package}")
        found.append(f"{package} {entry['version'] if entry else metadata.version(package)}")
    return ", ".join(found)


def render(results: Results) -> str:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    lines = [
        BEGIN,
        f"Last run {datetime.date.today().isoformat()} (Node {node.stdout.strip()}), "
        "by `.venv/bin/python -m tests.interop.table`:",
        "",
        "| stack | language | versions | checks | "
        + " | ".join(TARGET_TITLES[target] for target in TARGETS)
        + " |",
        "|---|---|---|---|" + "---|" * len(TARGETS),
    ]
    for name, (language, title, _run) in STACKS.items():
        cells = [cell(results[name][target]) for target in TARGETS]
        lines.append(
            f"| {title} | {language} | {versions(name)} | "
            f"{checked(results[name][TARGETS[0]])} | " + " | ".join(cells) + " |"
        )
    lines.append(END)
    return "\n".join(lines)


def readme_rows() -> dict[str, list[str]]:
    """The table as docs/idp.md has it: stack title -> its cells."""
    text = PAGE.read_text()
    section = text[text.index(BEGIN) : text.index(END)]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| stack"):
            cells = [part.strip() for part in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def main() -> None:
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    table = render(collect())
    text = PAGE.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    PAGE.write_text(pattern.sub(lambda _match: table, text))
    print(table)


if __name__ == "__main__":
    main()
