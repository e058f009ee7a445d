"""The history: what the services decided and which faults acted, in one ordered record.

Tokens appear only as fingerprints. Decisions and applied faults share one sequence, so a
timeline (and the checker) sees them in the order they happened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs

from jitchaos._schedule import fault_from_json, fault_to_json
from jitchaos.faults import AnyFault

__all__ = ["AppliedFault", "Decision", "History"]


def _record_fields(
    data: object,
    record: str,
    cls: type,
    required: set[str],
    checks: dict[str, type | tuple[type, ...]],
) -> dict[str, Any]:
    """The fields of a ``{"type": record, ...}`` line for ``cls``: no unknown field, the
    ``required`` ones present, each in ``checks`` of its type (a bool is no number);
    ``ValueError`` naming what is wrong."""
    if not isinstance(data, dict) or data.get("type") != record:
        raise ValueError(f"not a {record} record")
    fields = {k: v for k, v in data.items() if k != "type"}
    expected = {f.name for f in attrs.fields(cls)}
    if set(fields) - expected or required - set(fields):
        raise ValueError(f"a {record} record has the fields {sorted(expected)}")
    for name, kind in checks.items():
        value = fields.get(name)
        if name in fields and (
            (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind)
        ):
            raise ValueError(f"{record} field {name}={value!r} has the wrong type")
    return fields


@attrs.frozen(kw_only=True)
class Decision:
    """What a service answered to one request that went through the proxy."""

    seq: int
    """Position in the history, from 1."""
    at: float
    """Clock time of the answer."""
    step: int
    """The driving test's step when it was answered."""
    service: str
    """Name of the service (``--service NAME=URL``)."""
    method: str
    path: str
    """Request path, without the query (which may hold a token)."""
    fingerprint: str | None
    """Fingerprint of the bearer token the request carried, if any."""
    status: int
    """HTTP status the service answered (or the proxy, when the service was unreachable)."""
    ledger_seq: int = 0
    """How many ledger events had been recorded when the service answered: with a clock that
    did not move, it orders the decision among events of the same instant."""
    holder: str | None = None
    """Who was driving the traffic then (the proxy's :attr:`~ChaosProxy.holder`, e.g. the
    pytest node id the plugin sets), for the post-test audit."""
    latency: float = 0.0
    """Real seconds from the request reaching the proxy to the service's answer."""

    @property
    def accepted(self) -> bool:
        """Whether the service let the request through (2xx or 3xx)."""
        return 200 <= self.status < 400

    def to_json(self) -> dict[str, Any]:
        return {"type": "decision", **attrs.asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> Decision:
        """The decision :meth:`to_json` wrote; ``ValueError`` naming what is wrong."""
        fields = _record_fields(
            data,
            "decision",
            cls,
            {"seq", "at", "status", "method", "path"},
            {
                "seq": int,
                "step": int,
                "status": int,
                "ledger_seq": int,
                "at": (int, float),
                "latency": (int, float),
                "service": str,
                "method": str,
                "path": str,
            },
        )
        for name in ("fingerprint", "holder"):
            if fields.get(name) is not None and not isinstance(fields[name], str):
                raise ValueError(f"decision field {name}={fields[name]!r} is not a string")
        fields.setdefault("step", 0)
        fields.setdefault("service", "")
        fields.setdefault("fingerprint", None)
        return cls(**fields)


@attrs.frozen(kw_only=True)
class AppliedFault:
    """A fault that fired (or could not act, ``applied=False``), and what it did."""

    seq: int
    at: float
    step: int
    fault: AnyFault
    trigger: str
    """What fired it: a schedule trigger's repr, ``"now"`` (control API), or the fault entry
    whose lasting effect acted (``"effect of #SEQ"``)."""
    applied: bool
    detail: str
    """One line: what changed (fingerprints and grant ids, never raw tokens), or why not."""
    ledger_span: tuple[int, int] | None = None
    """The ledger positions its events took, ``(first, end)``: the events recorded after the
    first ``first`` and up to ``end`` (None where not known: a record written before)."""

    def to_json(self) -> dict[str, Any]:
        fields = attrs.asdict(self, recurse=False)
        fields["fault"] = fault_to_json(self.fault)
        if self.ledger_span is None:
            del fields["ledger_span"]
        else:
            fields["ledger_span"] = list(self.ledger_span)
        return {"type": "fault", **fields}

    @classmethod
    def from_json(cls, data: object) -> AppliedFault:
        """The record :meth:`to_json` wrote; ``ValueError`` naming what is wrong."""
        expected = {f.name for f in attrs.fields(cls)} - {"ledger_span"}
        fields = _record_fields(
            data,
            "fault",
            cls,
            expected,
            {
                "seq": int,
                "step": int,
                "at": (int, float),
                "trigger": str,
                "applied": bool,
                "detail": str,
            },
        )
        fields["fault"] = fault_from_json(fields["fault"])
        span = fields.get("ledger_span")
        if span is not None:
            if not (
                isinstance(span, list)
                and len(span) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in span)
            ):
                raise ValueError(f"fault field ledger_span={span!r} must be [first, end]")
            fields["ledger_span"] = (span[0], span[1])
        return cls(**fields)


class History:
    """Decisions and applied faults, in order. Thread-safe."""

    def __init__(self, on_fault: Callable[[AppliedFault], None] | None = None) -> None:
        """``on_fault`` hears every fault record as it is made (the proxy writes each into
        its audit log)."""
        self._lock = threading.Lock()
        self._entries: list[Decision | AppliedFault] = []
        self._seq = 0
        self._on_fault = on_fault

    @property
    def entries(self) -> tuple[Decision | AppliedFault, ...]:
        """Everything, in order."""
        with self._lock:
            return tuple(self._entries)

    @property
    def seq(self) -> int:
        """The seq of the latest entry (0 before any): what a later entry's seq exceeds."""
        return self._seq

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(e for e in self.entries if isinstance(e, Decision))

    @property
    def faults(self) -> tuple[AppliedFault, ...]:
        return tuple(e for e in self.entries if isinstance(e, AppliedFault))

    def decision(self, **fields: Any) -> Decision:
        with self._lock:
            self._seq += 1
            entry = Decision(seq=self._seq, **fields)
            self._entries.append(entry)
        return entry

    def fault(self, **fields: Any) -> AppliedFault:
        with self._lock:
            self._seq += 1
            entry = AppliedFault(seq=self._seq, **fields)
            self._entries.append(entry)
        if self._on_fault is not None:
            self._on_fault(entry)
        return entry

    def forget(self, before: float) -> int:
        """Let go of the entries recorded before time ``before`` (an audit log keeps them);
        sequence numbers go on. Returns how many went."""
        with self._lock:
            kept = [e for e in self._entries if e.at >= before]
            gone = len(self._entries) - len(kept)
            self._entries = kept
        return gone

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._seq = 0
