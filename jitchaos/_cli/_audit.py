"""``jitchaos audit``: audit a log, or every xdist worker's log of one path."""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from jitchaos._audit import encode_event, read_audit
from jitchaos._cli._args import (
    UsageError,
    seconds_arg,
    time_arg,
)
from jitchaos.errors import AuditLogError

if TYPE_CHECKING:
    from jitchaos._audit import AuditReport
    from jitchaos._cli._args import Commands
    from jitchaos._post_audit import PostTestAudit


def add(commands: Commands) -> None:
    """The ``audit`` command's arguments."""
    audit = commands.add_parser(
        "audit",
        help="report open grants and bad lines of an audit log",
        description="Read an audit log; exit 0 when every grant was "
        "closed, 1 on findings, 2 when it cannot be read. FILE may be the path given to "
        "pytest's --jitchaos-audit under xdist: every worker's log (FILE.gw0.jsonl, ...) is "
        "audited.",
    )
    audit.add_argument("file", metavar="FILE")
    audit.add_argument(
        "--at",
        type=time_arg,
        default=None,
        help="reference time for open grants (default: the last event)",
    )
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument(
        "--staleness",
        type=seconds_arg,
        default=None,
        help="seconds a use may lag a revocation or narrowing (the services' policy; "
        "default: as the log's judging records say, else 0)",
    )
    audit.add_argument(
        "--key-staleness",
        type=seconds_arg,
        default=None,
        help="seconds the services' key caches may lag the JWKS (rotations, removals)",
    )
    audit.add_argument(
        "--leeway", type=seconds_arg, default=None, help="clock leeway around exp and nbf"
    )


def _audit_logs(path: str) -> list[Path]:
    """``path`` itself when it exists, and the per-worker logs pytest-xdist wrote for it
    (``stem.gwN.suffix``, in worker order)."""
    given = Path(path)
    suffix = given.suffix or ".jsonl"
    workers = []
    for candidate in given.parent.glob(f"{glob.escape(given.stem)}.gw*{glob.escape(suffix)}"):
        number = candidate.name[len(given.stem) + 3 : len(candidate.name) - len(suffix)]
        if number.isdigit():
            workers.append((int(number), candidate))
    found = [given] if given.exists() else []
    return found + [candidate for _, candidate in sorted(workers)] or [given]


def run(args: argparse.Namespace) -> int:
    logs = _audit_logs(args.file)
    results = [_audit_one(args, log) for log in logs]
    if args.json:
        documents = [document for _, document, _ in results]
        print(json.dumps(documents[0] if len(logs) == 1 else {"logs": documents}, indent=2))
    else:
        if len(logs) > 1:
            print(f"{args.file}: {len(logs)} logs ({', '.join(p.name for p in logs)})")
        print("\n".join(text for _, _, text in results))
    return max(code for code, _, _ in results)


def _judged(report: AuditReport, given: dict[str, Any]) -> PostTestAudit:
    """The post-test audit of ``report``'s log as the run judged it: each test (lease
    holder) with the policy and routes its judging record gives, or the run's record, with
    the policy fields ``given`` on the command line overriding them all."""
    from jitchaos._audit import Judging
    from jitchaos._policy import Policy
    from jitchaos._post_audit import audit_grants

    assert report.ledger is not None
    assert report.at is not None
    run = next((j for j in report.judging if j.holder is None), None)
    per_test = {j.holder: j for j in report.judging if j.holder is not None}
    holders = sorted({lease.holder for lease in report.ledger.leases.values()})

    def policy(judging: Judging | None) -> Policy:
        base = judging.policy if judging is not None else Policy()
        return attrs.evolve(base, **given)

    if not report.judging or not holders:
        return audit_grants(
            report.ledger,
            report.decisions,
            at=report.at,
            policy=policy(run),
            required_scopes=run.routes if run is not None else None,
        )
    audits = []
    for holder in holders:
        judging = per_test.get(holder, run)
        audits.append(
            audit_grants(
                report.ledger,
                report.decisions,  # all of them, as the test's own audit had
                at=report.at,
                policy=policy(judging),
                holder=holder,
                required_scopes=judging.routes if judging is not None else None,
            )
        )
    first = audits[0]
    return attrs.evolve(
        first,
        grants=sum(a.grants for a in audits),
        decisions=sum(a.decisions for a in audits),
        findings=tuple(f for a in audits for f in a.findings),
        notes=tuple(n for a in audits for n in a.notes),
    )


def _audit_one(args: argparse.Namespace, path: Path) -> tuple[int, dict[str, Any], str]:
    """Audit one log: (exit code, the JSON document, the text report)."""

    try:
        report = read_audit(path, at=args.at)
    except AuditLogError as error:
        raise UsageError(str(error)) from None
    post = None
    if report.ledger is not None and report.at is not None:
        given = {
            name: value
            for name, value in (
                ("staleness", args.staleness),
                ("leeway", args.leeway),
                ("key_staleness", args.key_staleness),
            )
            if value is not None
        }
        post = _judged(report, given)
    document = {
        "path": report.path,
        "at": report.at,
        "events": len(report.events),
        "open_grants": [
            {
                "grant_id": g.grant_id,
                "principal": str(g.principal),
                "client_id": g.client_id,
                "scopes": sorted(g.scopes),
                "issued_at": g.issued_at,
            }
            for g in report.open_grants
        ],
        "malformed": [{"line": m.line, "reason": m.reason} for m in report.malformed],
        "last_event": encode_event(report.events[-1]) if report.events else None,
        "decisions": len(report.decisions),
        "faults": [fault.to_json() for fault in report.faults],
        "findings": [
            {"kind": f.kind, "finding": f.sentence}
            for f in (post.findings if post is not None else ())
        ],
        "notes": list(post.notes if post is not None else ()),
    }
    text = report.format()
    if post is not None and (report.decisions or report.ledger_has_leases):
        text += "\n" + post.format()
    clean = report.ok and (post is None or post.ok)
    return (0 if clean else 1), document, text
