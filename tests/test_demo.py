"""`make demo`'s entry point finds the planted bug, writes a notebook that replays it on a real
Jupyter kernel, and finds nothing in the fixed service; failures of a machine's TestCase become
notebooks; `jitchaos repro` rebuilds one from the saved failure."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import nbformat
import pytest
from hypothesis import HealthCheck, settings

from jitchaos import AuthChaosMachine, Failure, Policy
from jitchaos._demo import DEMOS, run_demo, story
from jitchaos.known_bugs import permission_cache
from tests.common.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}")


def outputs(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", "") or json.dumps(output.get("data", {}))[:200])
    return texts


@pytest.mark.slow
def test_the_demo_finds_the_bug_writes_a_replaying_notebook_and_clears_the_twin(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    buggy, twin = run_demo(notebooks=tmp_path, out=said.append)  # what make demo runs
    assert buggy.record is not None
    assert twin.record is None
    kind = buggy.record.violations[0].kind
    text = "\n".join(said)
    assert f"-> {kind}" in text  # the story ends in the violation
    assert "  1. " in text
    assert f"repro notebook: {buggy.notebook}" in text
    assert "no violation in" in text.splitlines()[-1]
    # The all-clear says what it rests on.
    assert twin.report.judged > 0
    assert f"{twin.report.judged} uses judged" in text.splitlines()[-1]
    # The notebook was run on a real kernel by the demo: the checker's cell shows the same
    # violation again, and the timeline is an image.
    assert buggy.notebook is not None
    shown = outputs(buggy.notebook)
    assert any(f"[{kind}]" in out for out in shown), shown
    assert any("image/png" in out for out in shown)
    raw = buggy.notebook.read_text() + buggy.notebook.with_suffix(".json").read_text()
    assert not JWT.search(raw)  # fingerprints only

    # The same steps against the fixed service: the notebook runs clean.
    fixed = json.loads(buggy.notebook.with_suffix(".json").read_text())
    fixed["service"]["kwargs"] = {"fixed": True}
    saved = tmp_path / "fixed.json"
    saved.write_text(json.dumps(fixed))
    result = run_cli("repro", str(saved), "--out", str(tmp_path / "fixed"), "--execute")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    shown = outputs(path)
    assert any(out.strip() == "no violation" for out in shown), shown


def test_the_story_reads_the_steps() -> None:
    failure = Failure.from_json(
        {
            "format": "jitchaos-failure/1",
            "test": "T",
            "machine": "service",
            "service": {"url": "http://127.0.0.1:9"},
            "routes": {},
            "policy": {},
            "steps": [
                {
                    "rule": "login",
                    "args": {"user": "alice"},
                    "draws": [{"set": ["read", "write"]}, "POST /write"],
                },
                {"rule": "narrow", "args": {"token": {"token": 0}}, "draws": [{"set": ["read"]}]},
                {"rule": "advance", "args": {}, "draws": [31]},
            ],
            "violations": [{"kind": "narrowed-scope-honoured", "sentence": "POST /write ..."}],
        }
    )
    assert failure.policy == Policy()
    assert Failure.from_json(failure.to_json()) == failure  # versioned JSON round trip
    assert story(failure).splitlines() == [
        "  1. alice logs in, gets token 1 for read+write, uses it on POST /write",
        "  2. token 1's grant is narrowed to read",
        "  3. 31 s pass; clients keep using their tokens",
        "  -> narrowed-scope-honoured: POST /write ...",
    ]


def test_demo_list_and_bad_names() -> None:
    listed = run_cli("demo", "--list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(DEMOS)
    bad = run_cli("demo", "nosuch")
    assert bad.returncode == 2
    assert "no demo 'nosuch'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


class Leaky(AuthChaosMachine):
    service = staticmethod(permission_cache.make_app)
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}, "POST /write": {"write"}}
    policy = Policy(staleness=30)


def test_a_failing_test_case_writes_its_notebook(tmp_path: Path) -> None:
    case: Any = Leaky.TestCase
    case.settings = settings(
        max_examples=400,
        stateful_step_count=10,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    case.notebooks = str(tmp_path)
    with pytest.raises((AssertionError, ExceptionGroup)) as caught:
        case().runTest()
    notes = "\n".join(caught.value.__notes__)
    paths = sorted(tmp_path.glob("*.ipynb"))  # one for each distinct violation kind
    assert paths
    for path in paths:
        assert path.name.startswith("Leaky-")
        # Run before it was written (a kernel is here): it opens with its outputs and plot.
        assert f"repro notebook {path} (run: outputs and timeline inside)" in notes
        ran = nbformat.read(path, as_version=4)
        outputs = [o for cell in ran.cells if cell.cell_type == "code" for o in cell.outputs]
        # The timeline and the coverage heat map.
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
        assert "[" in "".join(o.get("text", "") for o in outputs)  # the checker's finding
    path = paths[0]
    failure = Failure.load(path.with_suffix(".json"))
    assert failure.service == {
        "factory": "jitchaos.known_bugs.permission_cache:make_app",
        "kwargs": {},
    }
    assert not JWT.search(path.read_text())
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown"
    assert failure.violations[0].kind in cells[0].source
    # set-up, steps, checker, timeline, coverage (its words and its plot)
    assert len(cells) == 2 + len(failure.steps) + 4
    # The timeline's axis spans the failure: from the first event of its evidence to the
    # offending use, each violation drawn as a red cross inside the axis.
    from jitchaos.notebook import Repro

    repro = Repro(failure)
    try:
        for step in failure.steps:
            repro.step(step)
        found = repro.machine.violations()
        ax = repro.plot()
    finally:
        repro.close()
    assert found
    low, high = ax.get_xlim()
    crosses = [x for line in ax.lines if line.get_marker() == "x" for x in line.get_xdata()]
    assert crosses
    assert all(low < x < high for x in crosses)
    span = max(
        v.decision.at - min(e.at for e in v.evidence) for v in found if v.decision and v.evidence
    )
    assert high - low >= span


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"format": "other"}', "is not a jitchaos failure"),
        ('{"format": "jitchaos-failure/1", "test": 1}', "'test' must be a str"),
    ],
)
def test_bad_failure_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    saved = tmp_path / "failure.json"
    saved.write_text(content)
    result = run_cli("repro", str(saved), "--out", str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.ipynb"))  # nothing written


def test_an_unimportable_service_is_named(tmp_path: Path) -> None:
    from jitchaos.notebook import Repro

    class Local(Leaky):
        service = staticmethod(functools.partial(lambda **kw: permission_cache.make_app(**kw)))

    machine = Local()
    try:
        record = machine.failure(())
    finally:
        machine.teardown()
    assert "unimportable" in record.service
    with pytest.raises(Exception, match="cannot be imported"):
        Repro(record)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["refresh_on_timer", "concurrent_refresh"])
def test_the_client_demos_run(name: str, tmp_path: Path) -> None:
    # Both crashed: the runner gave a client machine its factory as a "service".
    said: list[str] = []
    buggy, twin = run_demo(name, notebooks=tmp_path, out=said.append, examples=300)
    assert buggy.record is not None, "\n".join(said)
    assert buggy.record.machine == "client"
    assert twin.record is None, "\n".join(said)
    assert list(tmp_path.glob("*.ipynb"))


def test_make_demo_leaves_the_checkout_clean() -> None:
    import subprocess

    from jitchaos._cli import _build_parser

    default = _build_parser().parse_args(["demo"]).notebooks
    assert default == ".jitchaos/notebooks"
    root = Path(__file__).resolve().parent.parent
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", f"{default}/x_demo-0.ipynb"], cwd=root, check=False
    )
    assert ignored.returncode == 0  # git ignores what the demo writes


def test_repro_execute_of_a_service_it_cannot_import_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    record = {
        "format": "jitchaos-failure/1",
        "test": "T",
        "machine": "service",
        "service": {"factory": "orders_nowhere_to_be_found.app:make_app", "kwargs": {}},
        "routes": {"GET /read": ["read"]},
        "policy": {},
        "steps": [{"rule": "grant", "args": {}, "draws": [{"set": ["read"]}, "GET /read"]}],
        "violations": [{"kind": "revoked-token-accepted", "sentence": "GET /read ..."}],
    }
    saved = tmp_path / "failure.json"
    saved.write_text(json.dumps(record))
    result = run_cli("repro", str(saved), "--out", str(tmp_path / "nb"), "--execute", timeout=180)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "could not import its service" in lines[0]
    assert "orders_nowhere_to_be_found" in lines[0]
    assert "Traceback" not in result.stderr
