"""The README and the docs/ pages say what is true: their Python examples run as written, the
files, make targets and command-line flags they name exist, their JSON examples are schedules,
and their links resolve."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
JITCHAOS_COMMANDS = ("idp", "proxy", "run", "demo", "repro", "faults", "audit")
KNOWN_BUGS = ("-m", "jitchaos.known_bugs")

FENCED = re.compile(r"^```([^\n]*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def fenced(page: Path, info: str) -> list[str]:
    """The fenced blocks of ``page`` whose info string is exactly ``info``."""
    return [body for tag, body in FENCED.findall(page.read_text()) if tag.strip() == info]


def prose(page: Path) -> str:
    """``page`` without its fenced blocks."""
    return FENCED.sub("", page.read_text())


def code_spans(page: Path) -> list[str]:
    return re.findall(r"`([^`\n]+)`", prose(page))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_examples_run(page: Path) -> None:
    blocks = fenced(page, "python")
    if page == README:
        assert blocks
    for block in blocks:
        # A fresh namespace each: every block must stand on its own.
        exec(compile(block, str(page), "exec"), {})  # noqa: S102


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_named_files_exist(page: Path) -> None:
    text = page.read_text()
    pattern = r"`((?:jitchaos|tests|bench|examples|strategies|notebooks)/[\w/.-]+\.\w+)`"
    for named in re.findall(pattern, text):
        assert (ROOT / named).is_file(), named


def make_targets(page: Path) -> set[str]:
    """``make X`` in code spans and at the start of lines of fenced blocks."""
    named = {span.split()[1] for span in code_spans(page) if re.match(r"make\s+[\w-]", span)}
    for _tag, body in FENCED.findall(page.read_text()):
        named |= set(re.findall(r"^(?:\$ )?make ([\w-]+)", body, flags=re.MULTILINE))
    return named


def test_make_targets_named_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    named = {target: page for page in PAGES for target in make_targets(page)}
    assert {"test", "demo"} <= make_targets(README)  # the README's two commands
    for target, page in named.items():
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), (
            f"{page_id(page)} names make {target}"
        )


def test_json_examples_are_schedules() -> None:
    from jitchaos import Schedule

    blocks = [block for page in PAGES for block in fenced(page, "json")]
    assert blocks
    for block in blocks:
        entries = json.loads(block)
        schedule = Schedule.from_json(entries)
        assert len(schedule.entries) == len(entries)  # every entry read, none dropped
        assert Schedule.from_json(schedule.to_json()) == schedule


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", prose(page), flags=re.MULTILINE):
        base = slug(heading)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", prose(page))
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page: Path) -> None:
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page_id(page)}: {target} does not exist"
        if anchor:
            assert linked.suffix == ".md", f"{page_id(page)}: {target}: an anchor in a non-page"
            assert anchor in anchors(linked), f"{page_id(page)}: {target}: no such heading"


def test_readme_links_every_docs_page() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(README)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)
    }
    assert set(PAGES[1:]) <= linked, sorted(map(page_id, set(PAGES[1:]) - linked))


@cache
def help_flags(*command: str) -> frozenset[str]:
    """The long options ``command --help`` lists."""
    answer = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return frozenset(re.findall(r"--[a-z][a-z0-9-]*", answer.stdout))


def commands(page: Path) -> list[tuple[tuple[str, ...], str]]:
    """Each command line a page shows (fenced, backslash continuations joined, or a code span)
    that runs ``jitchaos CMD`` or ``python -m jitchaos.known_bugs``: (its --help command, the
    line)."""
    lines = code_spans(page)
    for _tag, body in FENCED.findall(page.read_text()):
        lines += body.replace("\\\n", " ").splitlines()
    found: list[tuple[tuple[str, ...], str]] = []
    for line in lines:
        if match := re.match(r"(?:\$ )?(?:\S*/|python -m )?jitchaos (\w+)", line):
            found.append((("-m", "jitchaos", match.group(1)), line))
        elif line.startswith("python -m jitchaos.known_bugs"):
            found.append((KNOWN_BUGS, line))
    return found


def flags(text: str) -> list[str]:
    return re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_command_line_flags_exist(page: Path, pytestconfig: pytest.Config) -> None:
    shown = commands(page)
    for command, line in shown:
        for flag in flags(line.split("#")[0]):  # not the flags a comment names
            assert flag in help_flags(*command), f"{page_id(page)}: {line!r}: {flag}"
    # A flag named on its own belongs to some jitchaos command, the known bugs or the plugin.
    every = help_flags(*KNOWN_BUGS).union(
        *(help_flags("-m", "jitchaos", name) for name in JITCHAOS_COMMANDS)
    )
    on_their_own = {flag for span in code_spans(page) for flag in flags(span)}
    on_their_own -= {flag for _command, line in shown for flag in flags(line)}
    for flag in sorted(on_their_own - every):
        try:
            pytestconfig.getoption(flag)
        except ValueError:
            pytest.fail(f"{page_id(page)}: {flag} is no option of jitchaos or pytest")


def test_every_jitchaos_command_is_checked() -> None:
    """The flags above are checked against every command ``jitchaos --help`` lists."""
    answer = subprocess.run(
        [sys.executable, "-m", "jitchaos", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    listed = set(re.findall(r"^    (\w+)(?:  |$)", answer.stdout, flags=re.MULTILINE))
    assert listed == set(JITCHAOS_COMMANDS)


def test_control_api_is_documented() -> None:
    from jitchaos.errors import InvalidArgument
    from jitchaos.idp import IdPConfig
    from jitchaos.proxy import ChaosProxy
    from jitchaos.proxy._control import ROUTES

    page = (DOCS / "proxy.md").read_text()
    table = set(re.findall(r"^\| `([A-Z]+) (/\S*)`", page, flags=re.MULTILINE))
    assert table == {(method, path) for method, path, _handler, _does in ROUTES}
    # The secret's rule, as the proxy enforces it.
    rule = re.search(r"at least (\d+) printable ASCII characters", page)
    assert rule is not None
    shortest = int(rule.group(1))
    config = IdPConfig(clients=["svc:s3cret:read"])
    with pytest.raises(InvalidArgument):
        ChaosProxy(config, secret="s" * (shortest - 1))
    assert ChaosProxy(config, secret="s" * shortest).secret == "s" * shortest
