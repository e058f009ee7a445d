"""The audit log: append-only JSON Lines, one ledger event per line, tokens only as fingerprints.

Each event is written with a single ``write(2)`` on a file opened with ``O_APPEND`` before the
ledger applies it, so an acknowledged action is in the log even if the process is killed the
next instant, and writers in several processes never interleave within a line. When the write
fails, :class:`~jitchaos.errors.AuditError` propagates and the action does not happen.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from jitchaos._clock import instant
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._records import (
    EVENT_TYPES,
    Expired,
    Grant,
    Granted,
    IssuedToken,
    KeyPublished,
    KeyWithdrawn,
    Leased,
    LedgerEvent,
    Narrowed,
    Principal,
    Refreshed,
    Returned,
    Revoked,
    TokenKind,
    Widened,
)
from jitchaos.errors import AuditError, AuditLogError, InvalidArgument, JitchaosError

if TYPE_CHECKING:
    from jitchaos._history import AppliedFault, Decision

__all__ = [
    "AuditLog",
    "AuditReport",
    "Judging",
    "MalformedLine",
    "decode_event",
    "encode_event",
    "read_audit",
]

_NAMES: dict[type[LedgerEvent], str] = {
    Granted: "granted",
    Refreshed: "refreshed",
    Narrowed: "narrowed",
    Widened: "widened",
    Revoked: "revoked",
    Expired: "expired",
    Leased: "leased",
    Returned: "returned",
    KeyPublished: "key-published",
    KeyWithdrawn: "key-withdrawn",
}
_TYPES = {name: cls for cls, name in _NAMES.items()}
assert set(_NAMES) == set(EVENT_TYPES)


class AuditLog:
    """An append-only JSON Lines audit sink at ``path``.

    ``durable=True`` also fsyncs every line, surviving a machine crash, not only a process kill.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        if not isinstance(path, str | os.PathLike):
            raise InvalidArgument(f"path={path!r} must be a file path")
        self.path = Path(path)
        self.durable = durable
        try:
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as error:
            raise AuditError(
                error.errno, f"cannot open audit log {self.path}: {error.strerror}"
            ) from None

    def write(self, event: LedgerEvent) -> None:
        """Append ``event`` as one line; raise :class:`AuditError` if it is not all written."""
        self._append(json.dumps(encode_event(event), sort_keys=True, separators=(",", ":")))

    def _append(self, line: str) -> None:
        # One os.write of one whole line on an O_APPEND descriptor: concurrent writers
        # (xdist workers, threads) never interleave within a line.
        data = (line + "\n").encode()
        if self._fd is None:
            raise AuditError(f"audit log {self.path} is closed")
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise AuditError(f"audit log {self.path}: wrote {written} of {len(data)} bytes")
            if self.durable:
                os.fsync(self._fd)
        except OSError as error:
            if isinstance(error, AuditError):
                raise
            raise AuditError(
                error.errno, f"cannot write audit log {self.path}: {error.strerror}"
            ) from None

    def close(self) -> None:
        """Close the file; later writes raise :class:`AuditError`."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def write_decision(self, decision: Any) -> None:
        """Append one decision of the proxy's service side (``{"type": "decision", ...}``),
        so ``jitchaos audit`` can check uses against grants from this one file."""
        from jitchaos._history import Decision

        if not isinstance(decision, Decision):
            raise InvalidArgument(f"{decision!r} is not a Decision")
        self._append(json.dumps(decision.to_json(), separators=(",", ":")))

    def write_fault(self, applied: Any) -> None:
        """Append one fault the proxy applied (or could not apply) (``{"type": "fault",
        ...}``), so that the file alone tells a run's whole story: what changed, and when."""
        from jitchaos._history import AppliedFault

        if not isinstance(applied, AppliedFault):
            raise InvalidArgument(f"{applied!r} is not an AppliedFault")
        self._append(json.dumps(applied.to_json(), separators=(",", ":")))

    def write_judging(self, judging: Judging) -> None:
        """Append how uses are judged (``{"type": "judging", ...}``): the policy and the
        routes' required scopes, for one holder (a test) or, with none, for the whole run;
        so ``jitchaos audit`` on the file finds what the run's own audit found."""
        if not isinstance(judging, Judging):
            raise InvalidArgument(f"{judging!r} is not a Judging")
        self._append(json.dumps(judging.to_json(), separators=(",", ":")))

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"


def encode_event(event: LedgerEvent) -> dict[str, Any]:
    """The JSON object of one event: ``{"event": "granted", "seq": 1, "at": ..., ...}``."""

    def value(item: object) -> object:
        match item:
            case frozenset():
                return sorted(item)
            case Principal():
                return str(item)
            case IssuedToken():
                return {
                    field.name: value(getattr(item, field.name))
                    for field in attrs.fields(IssuedToken)
                }
            case TokenKind():
                return item.value
            case tuple():
                return [value(element) for element in item]
        return item

    if type(event) not in _NAMES:
        raise InvalidArgument(f"{event!r} is not a ledger event")
    encoded = {
        field.name: value(getattr(event, field.name)) for field in attrs.fields(type(event))
    }
    encoded["event"] = _NAMES[type(event)]
    return encoded


def decode_event(obj: object) -> LedgerEvent:
    """The event an :func:`encode_event` object describes; :class:`AuditLogError` if none."""
    if not isinstance(obj, dict):
        raise AuditLogError(f"expected a JSON object, got {type(obj).__name__}")
    name = obj.get("event")
    cls = _TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise AuditLogError(f"unknown event {name!r}")
    expected = {field.name for field in attrs.fields(cls)}
    extra = set(obj) - expected - {"event"}
    if extra:
        raise AuditLogError(f"unexpected fields {sorted(extra)!r} in a {name} event")
    # A field added later with a default may be missing from an older log.
    defaulted = {f.name for f in attrs.fields(cls) if f.default is not attrs.NOTHING}
    missing = expected - set(obj) - defaulted
    if missing:
        raise AuditLogError(f"missing fields {sorted(missing)!r} in a {name} event")
    try:
        fields: dict[str, Any] = {
            key: _decode_field(key, obj[key]) for key in expected if key in obj
        }
        return cls(**fields)
    except (JitchaosError, TypeError, ValueError) as error:
        if isinstance(error, AuditLogError):
            raise
        raise AuditLogError(f"bad {name} event: {error}") from None


def _decode_field(key: str, raw: object) -> object:
    decoders: dict[str, Callable[[object], object]] = {
        "seq": _int,
        "at": _number,
        "principal": lambda v: Principal.parse(_str(v)),
        "scopes": _str_set,
        "previous": _str_set,
        "tokens": _tokens,
        "fingerprints": _str_tuple,
        "grant_ids": _str_tuple,
        "requested_ttl": _number,
        "ttl": _number,
        "max_ttl": lambda v: None if v is None else _number(v),
        "signs_from": _number,
        "resource": lambda v: None if v is None else _str(v),
        "valid_until": _number,
        "by_holder": _bool,
        "revoked": _bool,
    }
    return decoders.get(key, _str)(raw)


def _open_at(ledger: Ledger, at: float) -> tuple[Grant, ...]:
    """Grants not closed at ``at``: a usable token its holder never gave back, or a lease its
    holder never gave back at all (the fixture had to take it back). A lease given back that the
    IdP could not revoke is closed: its exposure is the post-test audit's note."""
    returns = {g: r for g, r in ledger.returns.items() if r.at <= at}
    usable = {g.grant_id for g in ledger.open_grants(at)}
    return tuple(
        grant
        for grant in ledger.grants
        if grant.issued_at <= at
        and (
            (grant.grant_id in usable and grant.grant_id not in returns)
            or (grant.grant_id in returns and not returns[grant.grant_id].by_holder)
        )
    )


def _bool(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise AuditLogError(f"{raw!r} is not true or false")
    return raw


def _int(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise AuditLogError(f"{raw!r} is not a positive integer")
    return raw


def _number(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise AuditLogError(f"{raw!r} is not a finite number")
    return float(raw)


def _str(raw: object) -> str:
    if not isinstance(raw, str):
        raise AuditLogError(f"{raw!r} is not a string")
    return raw


def _str_tuple(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise AuditLogError(f"{raw!r} is not a list")
    return tuple(_str(item) for item in raw)


def _str_set(raw: object) -> frozenset[str]:
    return frozenset(_str_tuple(raw))


def _tokens(raw: object) -> tuple[IssuedToken, ...]:
    if not isinstance(raw, list):
        raise AuditLogError(f"{raw!r} is not a list of tokens")
    tokens = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {
            "fingerprint",
            "kind",
            "issued_at",
            "expires_at",
            "scopes",
            "kid",
        }:
            raise AuditLogError(f"{item!r} is not a token record")
        kid = item["kid"]
        tokens.append(
            IssuedToken(
                fingerprint=_str(item["fingerprint"]),
                kind=TokenKind(_str(item["kind"])),
                issued_at=_number(item["issued_at"]),
                expires_at=_number(item["expires_at"]),
                scopes=_str_set(item["scopes"]),
                kid=None if kid is None else _str(kid),
            )
        )
    return tuple(tokens)


@attrs.frozen
class Judging:
    """How a run (``holder`` None) or one test (its node id) judges uses: its policy and the
    scopes each route needs (None: uses are checked against their window only)."""

    holder: str | None
    policy: Policy
    routes: Mapping[str, frozenset[str]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "judging",
            "holder": self.holder,
            "policy": attrs.asdict(self.policy),
            "routes": (
                {route: sorted(scopes) for route, scopes in self.routes.items()}
                if self.routes is not None
                else None
            ),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Judging:
        """The record :meth:`to_json` wrote; :class:`ValueError` naming what is wrong."""
        holder, policy, routes = raw.get("holder"), raw.get("policy"), raw.get("routes")
        if holder is not None and not isinstance(holder, str):
            raise ValueError("'holder' must be a string or null")
        if not isinstance(policy, dict):
            raise ValueError("'policy' must be an object of Policy fields")
        try:
            parsed = Policy(**policy)
        except (TypeError, InvalidArgument) as error:
            raise ValueError(f"'policy': {error}") from None
        if routes is None:
            return cls(holder, parsed)
        if not isinstance(routes, dict) or not all(
            isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)
            for scopes in routes.values()
        ):
            raise ValueError("'routes' must map each route to a list of scopes")
        return cls(holder, parsed, {str(r): frozenset(v) for r, v in routes.items()})


@attrs.frozen
class MalformedLine:
    """A line of an audit log that is not a well-formed event, or that does not fit the ones
    before it."""

    line: int
    reason: str


@attrs.frozen(kw_only=True)
class AuditReport:
    """What an audit log says: its events, the grants still open at its end, its bad lines."""

    path: str
    events: tuple[LedgerEvent, ...]
    at: float | None
    """The reference time: open grants are those still usable then."""
    open_grants: tuple[Grant, ...]
    malformed: tuple[MalformedLine, ...]
    decisions: tuple[Decision, ...] = ()
    """Decisions a proxy's service side wrote into the same log."""
    faults: tuple[AppliedFault, ...] = ()
    """Faults the proxy applied (or could not), as it wrote them into the same log."""
    judging: tuple[Judging, ...] = ()
    """How the run and its tests judged uses, as they wrote it into the same log."""
    ledger: Ledger | None = attrs.field(default=None, eq=False, repr=False)
    """The ledger the events replay into (for the post-test audit)."""

    @property
    def ledger_has_leases(self) -> bool:
        """Whether a broker wrote this log (its grants are leases to holders)."""
        return any(isinstance(event, Leased) for event in self.events)

    @property
    def ok(self) -> bool:
        """True when every grant was closed and every line is a well-formed event."""
        return not self.open_grants and not self.malformed

    def format(self) -> str:
        """The report as text, one finding per line."""
        grants = {e.grant_id for e in self.events if isinstance(e, Granted)}
        origin = self.events[0].at if self.events else None  # the run's start
        lines = [f"audit log {self.path}: {len(self.events)} events, {len(grants)} grants"]
        if self.open_grants:
            lines.append(
                f"{len(self.open_grants)} grants still open"
                + (f" at {instant(self.at, origin)}:" if self.at is not None else ":")
            )
            lines += [
                f"  {g.grant_id} {g.principal} via client {g.client_id} "
                f"scopes [{' '.join(sorted(g.scopes))}] granted at {instant(g.issued_at, origin)}"
                for g in self.open_grants
            ]
        if self.faults:
            applied = sum(1 for f in self.faults if f.applied)
            lines.append(
                f"{len(self.faults)} faults ({applied} applied, "
                f"{len(self.faults) - applied} could not act):"
            )
            lines += [
                f"  {instant(f.at, origin)} {f.fault.kind} "
                f"{'applied' if f.applied else 'not applied'} ({f.trigger}): {f.detail}"
                for f in self.faults
            ]
        if self.malformed:
            lines.append(f"{len(self.malformed)} malformed lines:")
            lines += [f"  line {m.line}: {m.reason}" for m in self.malformed]
        if self.ok:
            lines.append("every grant was closed; every line is well formed")
        return "\n".join(lines)


def read_audit(path: str | os.PathLike[str], *, at: float | None = None) -> AuditReport:
    """Read an audit log and report open grants (at ``at``, default the last event's time) and
    malformed lines. A file that cannot be read, is not UTF-8 text, or holds no event at all
    while holding other lines, raises :class:`~jitchaos.errors.AuditLogError`.
    """
    if at is not None and (
        isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)
    ):
        raise InvalidArgument(f"at={at!r} must be a finite number of seconds")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AuditLogError(f"audit log {path} does not exist") from None
    except IsADirectoryError:
        raise AuditLogError(f"audit log {path} is a directory") from None
    except OSError as error:
        raise AuditLogError(f"cannot read audit log {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad_line = data.count(b"\n", 0, error.start) + 1
        raise AuditLogError(f"audit log {path} is not UTF-8 text (line {bad_line})") from None

    from jitchaos._history import AppliedFault, Decision  # the proxy imports this module

    events: list[LedgerEvent] = []
    decisions: list[Decision] = []
    faults: list[AppliedFault] = []
    judging: list[Judging] = []
    malformed: list[MalformedLine] = []
    line_of: dict[int, int] = {}
    for number, line in _numbered_lines(text):
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and raw.get("type") == "decision":
                try:
                    decisions.append(Decision.from_json(raw))
                except (ValueError, TypeError) as error:
                    malformed.append(MalformedLine(number, f"bad decision: {error}"))
                continue
            if isinstance(raw, dict) and raw.get("type") == "judging":
                try:
                    judging.append(Judging.from_json(raw))
                except ValueError as error:
                    malformed.append(MalformedLine(number, f"bad judging record: {error}"))
                continue
            if isinstance(raw, dict) and raw.get("type") == "fault":
                try:
                    faults.append(AppliedFault.from_json(raw))
                except (ValueError, TypeError, InvalidArgument) as error:
                    malformed.append(MalformedLine(number, f"bad fault record: {error}"))
                continue
            event = decode_event(raw)
        except json.JSONDecodeError as error:
            malformed.append(MalformedLine(number, f"not JSON ({error.msg})"))
            continue
        except (AuditLogError, RecursionError) as error:
            malformed.append(MalformedLine(number, str(error)))
            continue
        expected = events[-1].seq + 1 if events else 1
        if event.seq != expected:
            malformed.append(
                MalformedLine(
                    number,
                    f"event seq {event.seq} where {expected} was expected "
                    "(events missing or out of order)",
                )
            )
        events.append(event)
        line_of[id(event)] = number
    if malformed and not events:
        raise AuditLogError(
            f"audit log {path} holds no audit event "
            f"(line {malformed[0].line}: {malformed[0].reason})"
        )

    def misfit(event: LedgerEvent, problem: str) -> None:
        malformed.append(MalformedLine(line_of[id(event)], problem))

    ledger = Ledger.replay(events, on_error=misfit)
    applied = ledger.events
    times = [e.at for e in applied] + [d.at for d in decisions]
    reference = at if at is not None else (max(times) if times else None)
    open_grants = _open_at(ledger, reference) if reference is not None else ()
    return AuditReport(
        path=str(path),
        events=ledger.events,
        at=reference,
        open_grants=open_grants,
        malformed=tuple(sorted(malformed, key=lambda m: m.line)),
        decisions=tuple(decisions),
        faults=tuple(faults),
        judging=tuple(judging),
        ledger=ledger,
    )


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line
