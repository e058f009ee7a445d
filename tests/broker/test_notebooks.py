"""--jitchaos-notebooks: a test that fails its audit leaves a notebook that reruns on a real
Jupyter kernel, prints the same findings and draws the timeline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytest_plugins = ["pytester"]


@pytest.mark.slow
def test_audit_failure_notebook_replays_on_a_kernel(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        """
        [pytest]
        jitchaos_services = api=http://127.0.0.1:9
        """
    )
    pytester.makepyfile(
        test_leaky="""
import requests


def test_keeps_it_and_uses_it_late(jit, jitchaos_proxy, jitchaos_clock):
    credential = jit.grant("subject:alice", {"read"}, ttl=30)
    requests.get(jitchaos_proxy.service_url("api") + "/x", headers=credential.headers)
"""
    )
    notebooks = pytester.path / "notebooks"
    result = pytester.runpytest_subprocess(
        "--jitchaos-notebooks", str(notebooks), "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    (path,) = notebooks.glob("*.ipynb")
    assert path.name.startswith("test_leaky.py-test_keeps_it_and_uses_it_late-")
    result.stdout.fnmatch_lines([f"*notebook: {path} (run: outputs and timeline inside)*"])
    text = path.read_text()
    # It states the finding in its first cell, and was run before it was written: it opens
    # with the audit's output and the timeline drawn.
    assert "- **open-grant**: grant g1 (subject:alice, read) granted to test_leaky.py::" in text
    assert '"execution_count": null' not in text
    _assert_ran(nbformat.read(path, as_version=4))
    # And it reruns anywhere, from the audit lines it carries.
    notebook = nbformat.read(path, as_version=4)
    # Jupyter's own deprecation notices are not ours to fix.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    _assert_ran(notebook)
    # No raw token anywhere in the notebook, before or after it ran.
    assert not re.search(r"eyJ[\w-]{20,}\.[\w-]{20,}", nbformat.writes(notebook))
    assert not re.search(r"eyJ[\w-]{20,}\.[\w-]{20,}", text)


def _assert_ran(notebook: Any) -> None:
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "[open-grant] grant g1 (subject:alice, read) granted to" in printed
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert images, "the timeline plot is drawn"


def test_without_a_kernel_the_notebook_says_it_was_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no Jupyter kernel can run, the notebook is written as it is and the reason said;
    a cell that fails is named, not raised."""
    import jitchaos._notebook as notebooks
    from jitchaos._notebook import python_notebook, ready_notebook

    monkeypatch.setattr(notebooks, "kernel_missing", lambda: "no Jupyter kernel here")
    notebook = python_notebook([nbformat.v4.new_code_cell("print('hello')")])
    assert ready_notebook(notebook) == "no Jupyter kernel here"
    assert notebook.cells[0].outputs == []
    monkeypatch.undo()
    failing = python_notebook([nbformat.v4.new_code_cell("raise KeyError('gone')")])
    assert ready_notebook(failing) == "the notebook stopped in a cell with KeyError: 'gone'"
    ran = python_notebook([nbformat.v4.new_code_cell("print('hello')")])
    assert ready_notebook(ran) is None
    assert ran.cells[0].outputs[0]["text"] == "hello\n"
    # What a service prints while the notebook runs leaves it with tokens as fingerprints.
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
    leaky = python_notebook([nbformat.v4.new_code_cell(f"print('Bearer {token}')")])
    assert ready_notebook(leaky) is None
    from jitchaos import fingerprint

    assert leaky.cells[0].outputs[0]["text"] == f"Bearer <token {fingerprint(token)}>\n"


def test_plot_timeline_marks_findings(tmp_path: Path) -> None:
    from jitchaos import (
        AuditLogError,
        Decision,
        Ledger,
        ManualClock,
        Policy,
        Principal,
        audit_grants,
    )
    from jitchaos._audit import encode_event
    from jitchaos.notebook import audit_notebook, plot_timeline, replay_lines, write_notebook
    from jitchaos.strategies import grants  # noqa: F401 - the API a notebook user has

    clock = ManualClock(start=1000)
    ledger = Ledger(clock)
    from jitchaos import GrantRequest

    granted = GrantRequest(
        principal=Principal.subject("alice"), client_id="web", scopes={"read"}, lifetime=60
    ).record(ledger)
    ledger.lease(granted.grant_id, holder="t", requested_ttl=60, ttl=60)
    clock.advance(10)
    ledger.revoke(grant=granted.grant_id)
    use = Decision(
        seq=1,
        at=1020,
        step=0,
        service="api",
        method="GET",
        path="/x",
        fingerprint=granted.tokens[0].fingerprint,
        status=200,
        holder="t",
    )
    report = audit_grants(ledger, [use], at=1030, holder="t")
    assert [f.kind for f in report.findings] == ["use-after-window"]
    ax = plot_timeline(ledger, [use], findings=report.findings, holder="t")
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["g1"]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1
    notebook = audit_notebook(ledger, [use], report, holder="t", policy=Policy())
    # The notebook's set-up cell rebuilds both with public API only.
    setup = notebook.cells[1].source
    assert "jitchaos._" not in setup
    lines = [encode_event(e) for e in ledger.events] + [use.to_json()]
    replayed, decisions = replay_lines(json.loads(json.dumps(lines)))
    assert replayed.events == ledger.events
    assert decisions == [use]
    with pytest.raises(AuditLogError, match="line 2: unknown event 'granted-ish'"):
        replay_lines([lines[0], {**lines[1], "event": "granted-ish"}])
    with pytest.raises(AuditLogError, match="line 1: "):
        replay_lines([{"type": "decision", "seq": "one"}])
    path = write_notebook(notebook, tmp_path, "tests/x.py::test a")
    assert path.name.startswith("tests-x.py-test-a-")
    assert path.suffix == ".ipynb"


def test_the_audit_notebook_finds_a_use_outside_its_scopes_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notebook's audit runs with the routes' scopes the test's audit had (issue #18: it
    said least privilege kept and drew the offending use green)."""
    import matplotlib

    from jitchaos import (
        Decision,
        GrantRequest,
        Ledger,
        ManualClock,
        Policy,
        Principal,
        audit_grants,
    )
    from jitchaos.notebook import audit_notebook

    matplotlib.use("Agg")
    clock = ManualClock(start=1000)
    ledger = Ledger(clock)
    granted = GrantRequest(
        principal=Principal.subject("alice"), client_id="web", scopes={"read"}, lifetime=60
    ).record(ledger)
    ledger.lease(granted.grant_id, holder="t", requested_ttl=60, ttl=60)
    clock.advance(5)
    write = Decision(
        seq=1,
        at=1005,
        step=0,
        service="api",
        method="POST",
        path="/orders",
        fingerprint=granted.tokens[0].fingerprint,
        status=200,
        holder="t",
    )
    clock.advance(2)
    ledger.revoke(grant=granted.grant_id)  # given back after its use
    routes = {"POST /orders": {"write"}}
    report = audit_grants(ledger, [write], at=1010, holder="t", required_scopes=routes)
    assert [f.kind for f in report.findings] == ["use-outside-scope"]
    notebook = audit_notebook(
        ledger, [write], report, holder="t", policy=Policy(), required_scopes=routes
    )
    namespace: dict[str, object] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            exec(cell.source.replace("plot_timeline(", "AX = plot_timeline("), namespace)  # noqa: S102
    again = namespace["report"]
    assert [f.kind for f in again.findings] == ["use-outside-scope"]  # type: ignore[attr-defined]
    ax = namespace["AX"]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]  # type: ignore[attr-defined]
    assert len(crosses) == 1  # the offending use is a red cross, not a green dot
    assert all(line.get_color() != "green" for line in ax.get_lines())  # type: ignore[attr-defined]
