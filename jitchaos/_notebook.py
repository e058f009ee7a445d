"""Failures as runnable notebooks, and the timeline plot they draw.

A notebook carries the audit lines it needs (fingerprints, never raw tokens), so it reruns
anywhere: it replays them into a ledger, runs the post-test audit again, prints the findings
and plots the timeline of grants, revocations and uses, with the offending uses marked.
nbformat writes the notebook; matplotlib draws the plot (both imported only when used).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jitchaos._audit import decode_event, encode_event
from jitchaos._history import Decision
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._post_audit import PostTestAudit
from jitchaos._records import KeyWithdrawn, Revoked
from jitchaos.errors import AuditLogError, InvalidArgument

__all__ = [
    "audit_notebook",
    "execute_notebook",
    "kernel_missing",
    "plot_timeline",
    "ready_notebook",
    "replay_lines",
    "write_notebook",
]


def audit_notebook(
    ledger: Ledger,
    decisions: Iterable[Decision],
    report: PostTestAudit,
    *,
    holder: str | None,
    policy: Policy,
    required_scopes: Mapping[str, Collection[str]] | None = None,
) -> Any:
    """A notebook that replays an audit failure: the findings, then the evidence and the
    timeline, computed again from the embedded audit lines when it runs, under the same
    ``policy`` and ``required_scopes`` as the test's audit (so a use outside its scopes is
    found again, and drawn red)."""
    routes = (
        {route: sorted(scopes) for route, scopes in required_scopes.items()}
        if required_scopes is not None
        else None
    )
    import nbformat

    lines = [encode_event(event) for event in ledger.events]
    lines += [decision.to_json() for decision in decisions]
    sentences = "\n".join(f"- **{f.kind}**: {f.sentence}" for f in report.findings)
    who = f" of `{holder}`" if holder else ""
    cells = [
        nbformat.v4.new_markdown_cell(
            f"# Post-test audit{who}: {len(report.findings)} findings\n\n{sentences}\n\n"
            "The cells below replay the audit log lines recorded during the run (tokens appear "
            "only as fingerprints), run the audit again and draw the timeline."
        ),
        nbformat.v4.new_code_cell(
            "import json\n\n"
            "from jitchaos import Policy, audit_grants\n"
            "from jitchaos.notebook import plot_timeline, replay_lines\n\n"
            f"LINES = json.loads({json.dumps(json.dumps(lines))})\n"
            "ledger, decisions = replay_lines(LINES)"
        ),
        nbformat.v4.new_code_cell(
            f"report = audit_grants(\n    ledger,\n    decisions,\n    at={report.at!r},\n"
            f"    policy={policy!r},\n"
            f"    holder={holder!r},\n"
            f"    required_scopes={routes!r},\n)\nprint(report.format())"
        ),
        nbformat.v4.new_code_cell(
            f"plot_timeline(ledger, decisions, findings=report.findings, holder={holder!r});"
        ),
    ]
    return python_notebook(cells)


def python_notebook(cells: list[Any]) -> Any:
    """A notebook of ``cells`` for the ``python3`` kernel."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


def kernel_missing() -> str | None:
    """Why no notebook can be run on a Jupyter kernel here; None when one can."""
    try:
        import nbclient  # noqa: F401
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return "no Jupyter kernel here (pip install 'jitchaos[notebook]')"
    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        return "no python3 Jupyter kernel is installed (pip install ipykernel)"
    return None


class CellFailed(InvalidArgument):
    """A notebook stopped in a cell; ``error`` is nbclient's CellExecutionError."""

    def __init__(self, message: str, error: Any) -> None:
        super().__init__(message)
        self.error = error


def execute_notebook(notebook: Any, *, timeout: float = 120) -> None:
    """Run ``notebook`` on a fresh ``python3`` Jupyter kernel, in place, so it carries its
    outputs and plots. InvalidArgument when there is no kernel; :class:`CellFailed` when a
    cell raised (the kernel is shut down either way)."""
    missing = kernel_missing()
    if missing is not None:
        raise InvalidArgument(f"executing a notebook needs a Jupyter kernel: {missing}")
    import os
    import tempfile

    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    # IPC sockets in a private directory: no TCP port, nothing reachable from elsewhere.
    with tempfile.TemporaryDirectory(prefix="jitchaos-kernel-") as sockets:
        manager = KernelManager(
            kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel")
        )
        try:
            # We own the kernel's client too: close its sockets when done.
            NotebookClient(notebook, timeout=timeout, km=manager).execute(cleanup_kc=True)
        except CellExecutionError as error:
            name = getattr(error, "ename", "Error")
            value = str(getattr(error, "evalue", "")).strip()
            first = value.splitlines()[0] if value else name
            stopped = f"the notebook stopped in a cell with {name}: {first}"
            raise CellFailed(stopped, error) from None
        except (CellTimeoutError, DeadKernelError) as error:
            raise CellFailed(f"the notebook's kernel gave up: {error}", error) from None
        except Exception as error:  # a kernel that would not start, a broken install
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            why = f"{type(error).__name__}: {first}" if first else type(error).__name__
            raise CellFailed(f"no kernel could run the notebook ({why})", error) from None
        finally:
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
            _scrub(notebook)


_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")


def _scrub(notebook: Any) -> None:
    """Tokens a service printed while the notebook ran (a debug log of a bearer header) leave
    its outputs as fingerprints: a notebook is shared, a token is a credential."""
    from jitchaos._tokens import fingerprint

    def clean(text: str) -> str:
        return _JWT.sub(lambda m: f"<token {fingerprint(m.group(0))}>", text)

    for cell in notebook.cells:
        for output in cell.get("outputs", ()):
            if isinstance(output.get("text"), str):
                output["text"] = clean(output["text"])
            data = output.get("data", {})
            if isinstance(data.get("text/plain"), str):
                data["text/plain"] = clean(data["text/plain"])
            if "traceback" in output:
                output["traceback"] = [clean(line) for line in output["traceback"]]


def ready_notebook(notebook: Any, *, timeout: float = 120) -> str | None:
    """Run ``notebook`` in place when a Jupyter kernel is available, so a failure's notebook
    opens with its outputs and plot; returns None when it ran, else why it did not (no
    kernel, or the cell that stopped it), for the caller to say plainly."""
    try:
        execute_notebook(notebook, timeout=timeout)
    except InvalidArgument as error:
        return str(error).removeprefix("executing a notebook needs a Jupyter kernel: ")
    return None


def replay_lines(lines: Iterable[Any]) -> tuple[Ledger, list[Decision]]:
    """The ledger and the decisions that audit log lines (decoded JSON objects, as an audit
    file or a notebook holds them) record. Raises :class:`~jitchaos.errors.AuditLogError` for
    a line that is neither."""
    events, decisions = [], []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, dict) and line.get("type") == "decision":
            try:
                decisions.append(Decision.from_json(line))
            except ValueError as error:
                raise AuditLogError(f"line {number}: {error}") from None
        else:
            try:
                events.append(decode_event(line))
            except AuditLogError as error:
                raise AuditLogError(f"line {number}: {error}") from None
    return Ledger.replay(events), decisions


def write_notebook(notebook: Any, directory: str | Path, name: str) -> Path:
    """Write ``notebook`` as ``DIRECTORY/<name>-<short hash>.ipynb`` and return the path."""
    import nbformat

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(notebook)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] or "failure"
    path = folder / f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:8]}.ipynb"
    path.write_text(text, encoding="utf-8")
    return path


def plot_timeline(
    ledger: Ledger,
    decisions: Sequence[Decision] = (),
    *,
    findings: Iterable[Any] = (),
    holder: str | None = None,
    faults: Iterable[Any] = (),
    ax: Any = None,
) -> Any:
    """Grants as bars from issue to revocation or expiry, uses as dots (green: accepted, grey:
    refused), the uses behind a finding (or violation) as red crosses, applied faults as
    labelled vertical lines. Returns the matplotlib axes."""
    import matplotlib.pyplot as plt  # inline in a notebook; Agg when there is no display

    leases = ledger.leases
    grants = [
        g
        for g in ledger.grants
        if holder is None
        or (g.grant_id in leases and leases[g.grant_id].holder == holder)
        or any(d.holder == holder and _grant_of(ledger, d) == g.grant_id for d in decisions)
    ]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * max(1, len(grants))))
    start = min([g.issued_at for g in grants] + [d.at for d in decisions], default=0.0)
    rows = {g.grant_id: index for index, g in enumerate(grants)}
    for grant in grants:
        end = _closed_at(ledger, grant.grant_id)
        row = rows[grant.grant_id]
        ax.broken_barh(
            [(grant.issued_at - start, max(end - grant.issued_at, 0.5))],
            (row - 0.3, 0.6),
            color="#9ecae1",
        )
        label = f"{grant.grant_id} {grant.principal}"
        ax.text(grant.issued_at - start, row + 0.35, label, fontsize=8)
    bad = [f.decision for f in findings if getattr(f, "decision", None) is not None]
    for decision in decisions:
        grant_id = _grant_of(ledger, decision)
        if grant_id not in rows:
            continue
        x, y = decision.at - start, rows[grant_id]
        if decision in bad:
            ax.plot(x, y, "x", color="red", markersize=12, markeredgewidth=2)
        else:
            ax.plot(x, y, "o", color="green" if decision.accepted else "grey")
    faults = list(faults)
    for fault in faults:
        if not getattr(fault, "applied", True):
            continue
        ax.axvline(fault.at - start, color="orange", linestyle="--", linewidth=1)
        ax.text(fault.at - start, -0.75, f" {fault.fault.kind}", color="darkorange", fontsize=8)
    moments = [d.at - start for d in decisions] + [
        f.at - start for f in faults if getattr(f, "applied", True)
    ]
    if moments:
        # Refresh tokens live for days: show the part of the bars where things happened.
        pad = max(1.0, 0.05 * (max(moments) - min(0.0, *moments)))
        ax.set_xlim(min(0.0, *moments) - pad, max(moments) + pad)
    ax.set_yticks(list(rows.values()), list(rows))
    ax.set_ylim(-1, max(1, len(rows)))
    ax.set_xlabel("seconds since the first grant")
    ax.set_title("grants (bars), uses (dots), faults (dashed), violations (red crosses)", pad=12)
    return ax


def _grant_of(ledger: Ledger, decision: Decision) -> str | None:
    record = ledger.lookup(decision.fingerprint) if decision.fingerprint else None
    return record.grant_id if record is not None else None


def _closed_at(ledger: Ledger, grant_id: str) -> float:
    grant = ledger.get_grant(grant_id)
    ends = []
    for fp in grant.fingerprints:
        record = ledger.lookup(fp)
        if record is None:
            continue
        ends.append(
            min(
                t
                for t in (
                    record.revoked_at,
                    record.expired_at,
                    record.withdrawn_at,
                    record.token.expires_at,
                )
                if t
            )
        )
    revocations = [
        e.at
        for e in ledger.events
        if isinstance(e, Revoked | KeyWithdrawn) and grant_id in e.grant_ids
    ]
    return min([*revocations, max(ends, default=grant.issued_at)])
