"""The post-test audit: did a test (or a staging run) keep to least privilege?

Over a ledger (with the leases the broker recorded) and the decisions the proxy's service side
recorded: every grant given back by its holder (or expired) by the end; no use after it was given
back; no accepted use after its window (expiry, or revocation plus the policy's staleness) or
outside its scopes; no credential used by anyone but the holder it was granted to; no token
living longer than its lease asked; no renewal beyond the lease's cap. What the IdP could not
take back (a token type it does not revoke) is reported as exposure: the seconds it stays valid
after its return.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import attrs

from jitchaos._checks import finite_number, route_scopes
from jitchaos._clock import instant
from jitchaos._history import Decision
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._records import Grant, Leased, LedgerEvent, Outcome, Returned, TokenKind
from jitchaos.errors import InvalidArgument

__all__ = ["Finding", "PostTestAudit", "audit_grants"]

KINDS = (
    "open-grant",
    "use-after-return",
    "lifetime-beyond-request",
    "use-after-window",
    "use-outside-scope",
    "credential-shared",
    "renewal-beyond-cap",
)


@attrs.frozen
class Finding:
    """One breach of least privilege, in one sentence, with the events that prove it."""

    kind: str
    """One of :data:`KINDS`."""
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
    notes: tuple[str, ...] = ()
    """What is no breach but must be known: tokens the IdP could not revoke and how long they
    stay valid after their return (the exposure)."""
    origin: float | None = None
    """The run's start (the ledger's first event), which instants are told from."""

    @property
    def ok(self) -> bool:
        return not self.findings

    def format(self) -> str:
        """The report as text: each finding with its evidence, as a timeline."""
        head = (
            f"post-test audit at {_t(self.at, self.origin)}: {self.grants} grants, "
            f"{self.decisions} uses"
        )
        notes = [f"  note: {note}" for note in self.notes]
        if self.ok:
            return "\n".join([f"{head}: least privilege kept", *notes])
        lines = [f"{head}: {len(self.findings)} findings", *notes]
        for finding in self.findings:
            lines.append(f"- [{finding.kind}] {finding.sentence}")
            for event in finding.evidence:
                lines.append(f"    {_t(event.at, self.origin)}  #{event.seq} {_describe(event)}")
            if finding.decision is not None:
                d = finding.decision
                who = d.holder or "no holder"
                lines.append(
                    f"    {_t(d.at, self.origin)}  {d.method} {d.path} -> {d.status} ({who})"
                )
        return "\n".join(lines)


def _t(seconds: float, origin: float | None) -> str:
    """An instant as people read it (ISO 8601 UTC, and from the run's start)."""
    return instant(seconds, origin)


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
    notes: list[str] = []
    returns = ledger.returns
    still_open = {g.grant_id for g in ledger.open_grants(at)}
    for grant in grants:
        given = returns.get(grant.grant_id)
        if given is not None and given.at > at:
            given = None  # after the audited period
        lease = leases.get(grant.grant_id)
        if given is not None and not given.by_holder:
            findings.append(_taken_back(grant, given, ledger))
        elif grant.grant_id in still_open and given is None:
            findings.append(_open(grant, lease, at, ledger))
        if given is not None and not given.revoked and given.valid_until > given.at:
            notes.append(
                f"grant {grant.grant_id} ({grant.principal}) was given back at "
                f"{ledger.when(given.at)} "
                f"but stays valid until {ledger.when(given.valid_until)}: "
                f"{given.valid_until - given.at:.0f}s of exposure ({given.reason})"
            )
        if lease is not None and lease.resource is not None:
            notes.append(f"grant {grant.grant_id} was bound to resource {lease.resource}")
        if lease is not None:
            findings += _longer_than_asked(grant, lease, ledger)
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
        given = returns.get(record.grant_id)
        shared = lease is not None and decision.holder not in (None, lease.holder)
        if given is not None and given.at < decision.at and not shared:
            findings.append(
                Finding(
                    "use-after-return",
                    f"token {decision.fingerprint} was used ({decision.method} "
                    f"{decision.path} -> {decision.status}) at {ledger.when(decision.at)}, "
                    "after it was "
                    f"given back at {ledger.when(given.at)}",
                    (given,),
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
            key_staleness=policy.key_staleness,
        )
        if verdict.outcome is not Outcome.MUST_DENY:
            continue
        in_window = ledger.verdict(
            decision.fingerprint,
            at=decision.at,
            staleness=policy.staleness,
            leeway=policy.leeway,
            key_staleness=policy.key_staleness,
        )
        kind = (
            "use-after-window" if in_window.outcome is Outcome.MUST_DENY else ("use-outside-scope")
        )
        findings.append(
            Finding(
                kind,
                f"{decision.method} {decision.path} at {ledger.when(decision.at)} was answered "
                f"{decision.status} with token {decision.fingerprint} although "
                f"{verdict.reason}",
                verdict.evidence,
                decision,
            )
        )
    return PostTestAudit(
        at=at,
        grants=len(grants),
        decisions=counted,
        findings=tuple(findings),
        notes=tuple(notes),
        origin=ledger.origin,
    )


def _open(grant: Grant, lease: Leased | None, at: float, ledger: Ledger) -> Finding:
    whose = f" granted to {lease.holder}" if lease is not None else ""
    scopes = " ".join(sorted(grant.scopes)) or "no scopes"
    evidence = tuple(e for e in ledger.events if getattr(e, "grant_id", None) == grant.grant_id)
    return Finding(
        "open-grant",
        f"grant {grant.grant_id} ({grant.principal}, {scopes}){whose} at "
        f"{ledger.when(grant.issued_at)} "
        f"was never revoked and had not expired by {ledger.when(at)}",
        evidence,
    )


def _taken_back(grant: Grant, given: Returned, ledger: Ledger) -> Finding:
    scopes = " ".join(sorted(grant.scopes)) or "no scopes"
    evidence = tuple(e for e in ledger.events if getattr(e, "grant_id", None) == grant.grant_id)
    return Finding(
        "open-grant",
        f"grant {grant.grant_id} ({grant.principal}, {scopes}) granted to {given.holder} at "
        f"{ledger.when(grant.issued_at)} was never given back: the fixture took it back at "
        f"{ledger.when(given.at)}",
        evidence,
    )


def _access_tokens(grant: Grant, ledger: Ledger) -> list[tuple[str, float, float]]:
    found = []
    for fp in grant.fingerprints:
        record = ledger.lookup(fp)
        if record is not None and record.token.kind is TokenKind.ACCESS:
            found.append((fp, record.token.issued_at, record.token.expires_at))
    return found


def _longer_than_asked(grant: Grant, lease: Leased, ledger: Ledger) -> list[Finding]:
    """A token that lives longer than its lease asked: the IdP's configuration widens every
    just-in-time credential (asked 30 s, issued 90 s)."""
    tokens = _access_tokens(grant, ledger)
    if not tokens:
        return []
    fp, issued_at, expires_at = tokens[0]
    if expires_at - issued_at <= lease.ttl + 1:
        return []
    return [
        Finding(
            "lifetime-beyond-request",
            f"grant {grant.grant_id}: asked {lease.ttl:.0f}s, the IdP issued "
            f"{expires_at - issued_at:.0f}s (token {fp} valid until {ledger.when(expires_at)})",
            (lease,),
        )
    ]


def _beyond_cap(grant: Grant, lease: Leased, ledger: Ledger) -> list[Finding]:
    assert lease.max_ttl is not None
    limit = lease.at + lease.max_ttl
    findings = []
    for fp in grant.fingerprints[1:]:  # renewals; a first token too long is another finding
        record = ledger.lookup(fp)
        if record is None or record.token.kind is not TokenKind.ACCESS:
            continue
        if record.token.expires_at > limit + 1e-6:
            findings.append(
                Finding(
                    "renewal-beyond-cap",
                    f"grant {grant.grant_id} held token {fp} until "
                    f"{ledger.when(record.token.expires_at)}, beyond its lease cap of "
                    f"{lease.max_ttl:g}s from {ledger.when(lease.at)}",
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
