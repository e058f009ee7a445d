"""jitchaos: property-based chaos testing for services whose credentials change under them."""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from jitchaos._audit import AuditLog, AuditReport, MalformedLine, read_audit
from jitchaos._broker import Broker, Credential
from jitchaos._checker import FINDINGS, VIOLATION_KINDS, Forged, Violation, check
from jitchaos._clock import Clock, ManualClock, OffsetClock, SystemClock
from jitchaos._failure import Failure
from jitchaos._history import AppliedFault, Decision, History
from jitchaos._keys import KeyRing, SigningKey
from jitchaos._ledger import Ledger
from jitchaos._policy import Policy
from jitchaos._post_audit import Finding, PostTestAudit, audit_grants
from jitchaos._records import (
    Expired,
    Grant,
    Granted,
    GrantRequest,
    IssuedToken,
    KeyPublished,
    KeyWithdrawn,
    Leased,
    LedgerEvent,
    Narrowed,
    Outcome,
    Principal,
    PrincipalKind,
    Refreshed,
    Returned,
    Revoked,
    TokenKind,
    TokenRecord,
    TokenStatus,
    Verdict,
    Widened,
)
from jitchaos._report import RunReport, report
from jitchaos._schedule import AtStep, AtTime, OnEvent, OnRequest, Schedule, Scheduled, Trigger
from jitchaos._tokens import Secret, fingerprint, mint_access_token, verify_access_token
from jitchaos._vacuity import VacuousRun
from jitchaos.errors import (
    AuditError,
    AuditLogError,
    BrokerError,
    ConfigError,
    ControlError,
    InvalidArgument,
    InvalidToken,
    JitchaosError,
    LedgerError,
)

if _TYPE_CHECKING:
    from jitchaos._stateful import AuthChaosMachine, ClientChaosMachine, ViolationFound
    from jitchaos.proxy import ChaosProxy, ProxyClient

# The proxy and the machines run servers (aiohttp, httptools): they load when first named, so
# judging, auditing and reporting (check, audit_grants, read_audit) import no server code.
_LAZY = {
    "ChaosProxy": "jitchaos.proxy",
    "ProxyClient": "jitchaos.proxy",
    "AuthChaosMachine": "jitchaos._stateful",
    "ClientChaosMachine": "jitchaos._stateful",
    "ViolationFound": "jitchaos._stateful",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jitchaos' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0.dev0"

__all__ = [
    "FINDINGS",
    "VIOLATION_KINDS",
    "AppliedFault",
    "AtStep",
    "AtTime",
    "AuditError",
    "AuditLog",
    "AuditLogError",
    "AuditReport",
    "AuthChaosMachine",
    "Broker",
    "BrokerError",
    "ChaosProxy",
    "ClientChaosMachine",
    "Clock",
    "ConfigError",
    "ControlError",
    "Credential",
    "Decision",
    "Expired",
    "Failure",
    "Finding",
    "Forged",
    "Grant",
    "GrantRequest",
    "Granted",
    "History",
    "InvalidArgument",
    "InvalidToken",
    "IssuedToken",
    "JitchaosError",
    "KeyPublished",
    "KeyRing",
    "KeyWithdrawn",
    "Leased",
    "Ledger",
    "LedgerError",
    "LedgerEvent",
    "MalformedLine",
    "ManualClock",
    "Narrowed",
    "OffsetClock",
    "OnEvent",
    "OnRequest",
    "Outcome",
    "Policy",
    "PostTestAudit",
    "Principal",
    "PrincipalKind",
    "ProxyClient",
    "Refreshed",
    "Returned",
    "Revoked",
    "RunReport",
    "Schedule",
    "Scheduled",
    "Secret",
    "SigningKey",
    "SystemClock",
    "TokenKind",
    "TokenRecord",
    "TokenStatus",
    "Trigger",
    "VacuousRun",
    "Verdict",
    "Violation",
    "ViolationFound",
    "Widened",
    "audit_grants",
    "check",
    "fingerprint",
    "mint_access_token",
    "read_audit",
    "report",
    "verify_access_token",
]
