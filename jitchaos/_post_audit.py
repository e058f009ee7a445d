"""The post-test audit: did a test (or a staging run) keep to least privilege?

Over a ledger (with the leases the broker recorded) and the decisions the proxy's service side
recorded: every grant revoked or expired by the end; no accepted use after its window (expiry,
or revocation plus the policy's staleness) or outside its scopes; no credential used by anyone
but the holder it was granted to; no renewal beyond the lease's cap.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import attrs

from jitchaos._checks import finite_number, route_scopes
from jitchaos._ledger import Grant, Leased, Ledger, LedgerEvent, Outcome, TokenKind
from jitchaos._policy import Policy
from jitchaos.errors import InvalidArgument
from jitchaos.proxy._history import Decision

__all__ = ["Finding", "PostTestAudit", "audit_grants"]

KINDS = (
    "open-grant",
    "use-after-window",
    "use-outside-scope",
    "credential-shared",
    "renewal-beyond-cap",
)


@attrs.frozen
class Finding:
    """One breach of least privilege, in one sentence, with the events that prove it."""

    kind: str
    """One of ``open-grant``, ``use-after-window``, ``use-outside-scope``,
    ``credential-shared``, ``renewal-beyond-cap``."""
    sentence: str
    evidence: tuple[LedgerEvent, ...] = ()
    decision: Decision | None = None
    """The use that breached it, for findings about uses."""


@attrs.frozen
class PostTestAudit:
    """The result of :func:`audit_grants`."""

    at: float
    """The end of the audited period."""
    grants: int
    decisions: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def format(self) -> str:
        """The report as text: each finding with its evidence, as a timeline."""
        head = f"post-test audit at {_t(self.at)}: {self.grants} grants, {self.decisions} uses"
        if self.ok:
            return f"{head}: least privilege kept"
        lines = [f"{head}: {len(self.findings)} findings"]
        for finding in self.findings:
            lines.append(f"- [{finding.kind}] {finding.sentence}")
            for event in finding.evidence:
                lines.append(f"    t={_t(event.at)}  #{event.seq} {_describe(event)}")
            if finding.decision is not None:
                d = finding.decision
                who = d.holder or "no holder"
                lines.append(f"    t={_t(d.at)}  {d.method} {d.path} -> {d.status} ({who})")
        return "\n".join(lines)


def _t(seconds: float) -> str:
    """A time as it is, without exponent notation."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _describe(event: LedgerEvent) -> str:
    name = type(event).__name__.lower()
    grant = getattr(event, "grant_id", None) or ", ".join(getattr(event, "grant_ids", ()))
    reason = getattr(event, "reason", "")
    return f"{name} {grant}" + (f": {reason}" if reason else "")


def audit_grants(
    ledger: Ledger,
    decisions: Iterable[Decision] = (),
    *,
    at: float,
    policy: Policy | None = None,
    holder: str | None = None,
    required_scopes: Mapping[str, Collection[str]] | None = None,
) -> PostTestAudit:
    """Audit the grants in ``ledger`` (only those leased to ``holder``, when given) and the
    recorded ``decisions`` up to ``at``.

    ``required_scopes`` maps ``"METHOD /path"`` (or ``"/path"``) to the scopes a use needs;
    without it, uses are checked against their window only.
    """
    if not isinstance(ledger, Ledger):
        raise InvalidArgument(f"ledger={ledger!r} must be a Ledger")
    policy = policy if policy is not None else Policy()
    if not isinstance(policy, Policy):
        raise InvalidArgument(f"policy={policy!r} must be a Policy")
    at = finite_number("at", at)
    if holder is not None and not isinstance(holder, str):
        raise InvalidArgument(f"holder={holder!r} must be a str (a test id) or None")
    if not isinstance(decisions, Iterable):
        raise InvalidArgument(f"decisions={decisions!r} must be an iterable of Decision")
    decisions = list(decisions)
    for decision in decisions:
        if not isinstance(decision, Decision):
            raise InvalidArgument(f"decisions holds {decision!r}, not a Decision")
    if required_scopes is not None:
        required_scopes = route_scopes("required_scopes", required_scopes)
    leases = ledger.leases
    grants = [
        g
        for g in ledger.grants
        if holder is None or (g.grant_id in leases and leases[g.grant_id].holder == holder)
    ]
    mine = {g.grant_id for g in grants}
    findings: list[Finding] = []
    still_open = {g.grant_id for g in ledger.open_grants(at)}
    for grant in grants:
        if grant.grant_id in still_open:
            findings.append(_open(grant, leases.get(grant.grant_id), at, ledger))
        lease = leases.get(grant.grant_id)
        if lease is not None and lease.max_ttl is not None:
            findings += _beyond_cap(grant, lease, ledger)
    used = [d for d in decisions if d.at <= at and d.fingerprint is not None]
    counted = 0
    for decision in used:
        assert decision.fingerprint is not None
        record = ledger.lookup(decision.fingerprint)
        # The holder's own grants, and whatever the holder itself used (a credential another
        # test leaked to it).
        if record is None or (
            record.grant_id not in mine and (holder is None or decision.holder != holder)
        ):
            continue
        counted += 1
        lease = leases.get(record.grant_id)
        if lease is not None and decision.holder is not None and decision.holder != lease.holder:
            findings.append(
                Finding(
                    "credential-shared",
                    f"token {decision.fingerprint} granted to {lease.holder} was used by "
                    f"{decision.holder} ({decision.method} {decision.path} -> "
                    f"{decision.status})",
                    (lease,),
                    decision,
                )
            )
        if not decision.accepted:
            continue
        needed = _needed(decision, required_scopes)
        verdict = ledger.verdict(
            decision.fingerprint,
            at=decision.at,
            scopes=needed,
            staleness=policy.staleness,
            leeway=policy.leeway,
        )
        if verdict.outcome is not Outcome.MUST_DENY:
            continue
        in_window = ledger.verdict(
            decision.fingerprint,
            at=decision.at,
            staleness=policy.staleness,
            leeway=policy.leeway,
        )
        kind = (
            "use-after-window" if in_window.outcome is Outcome.MUST_DENY else ("use-outside-scope")
        )
        findings.append(
            Finding(
                kind,
                f"{decision.method} {decision.path} at {_t(decision.at)} was answered "
                f"{decision.status} with token {decision.fingerprint} although "
                f"{verdict.reason}",
                verdict.evidence,
                decision,
            )
        )
    return PostTestAudit(at=at, grants=len(grants), decisions=counted, findings=tuple(findings))


def _open(grant: Grant, lease: Leased | None, at: float, ledger: Ledger) -> Finding:
    whose = f" granted to {lease.holder}" if lease is not None else ""
    scopes = " ".join(sorted(grant.scopes)) or "no scopes"
    evidence = tuple(e for e in ledger.events if getattr(e, "grant_id", None) == grant.grant_id)
    return Finding(
        "open-grant",
        f"grant {grant.grant_id} ({grant.principal}, {scopes}){whose} at {_t(grant.issued_at)} "
        f"was never revoked and had not expired by {_t(at)}",
        evidence,
    )


def _beyond_cap(grant: Grant, lease: Leased, ledger: Ledger) -> list[Finding]:
    assert lease.max_ttl is not None
    limit = lease.at + lease.max_ttl
    findings = []
    for fp in grant.fingerprints:
        record = ledger.lookup(fp)
        if record is None or record.token.kind is not TokenKind.ACCESS:
            continue
        if record.token.expires_at > limit + 1e-6:
            findings.append(
                Finding(
                    "renewal-beyond-cap",
                    f"grant {grant.grant_id} held token {fp} until {_t(record.token.expires_at)}, "
                    f"beyond its lease cap of {_t(lease.max_ttl)}s from {_t(lease.at)}",
                    (lease,),
                )
            )
    return findings


def _needed(decision: Decision, required: Mapping[str, Collection[str]] | None) -> frozenset[str]:
    if not required:
        return frozenset()
    for key in (f"{decision.method} {decision.path}", decision.path):
        if key in required:
            return frozenset(required[key])
    return frozenset()
