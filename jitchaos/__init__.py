"""jitchaos: property-based chaos testing for services whose credentials change under them."""

from jitchaos._audit import AuditLog, AuditReport, MalformedLine, read_audit
from jitchaos._broker import Broker, Credential
from jitchaos._checker import VIOLATION_KINDS, Violation, check
from jitchaos._clock import Clock, ManualClock, OffsetClock, SystemClock
from jitchaos._keys import KeyRing, SigningKey
from jitchaos._ledger import (
    Expired,
    Grant,
    Granted,
    GrantRequest,
    IssuedToken,
    KeyPublished,
    KeyWithdrawn,
    Leased,
    Ledger,
    LedgerEvent,
    Narrowed,
    Outcome,
    Principal,
    PrincipalKind,
    Refreshed,
    Revoked,
    TokenKind,
    TokenRecord,
    TokenStatus,
    Verdict,
    Widened,
)
from jitchaos._policy import Policy
from jitchaos._post_audit import Finding, PostTestAudit, audit_grants
from jitchaos._report import RunReport, report
from jitchaos._schedule import AtStep, AtTime, OnEvent, OnRequest, Schedule, Scheduled, Trigger
from jitchaos._stateful import AuthChaosMachine, ClientChaosMachine
from jitchaos._tokens import fingerprint, mint_access_token, verify_access_token
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
from jitchaos.proxy import ChaosProxy, ProxyClient

__version__ = "0.1.0.dev0"

__all__ = [
    "VIOLATION_KINDS",
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
    "Expired",
    "Finding",
    "Grant",
    "GrantRequest",
    "Granted",
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
    "Revoked",
    "RunReport",
    "Schedule",
    "Scheduled",
    "SigningKey",
    "SystemClock",
    "TokenKind",
    "TokenRecord",
    "TokenStatus",
    "Trigger",
    "Verdict",
    "Violation",
    "Widened",
    "audit_grants",
    "check",
    "fingerprint",
    "mint_access_token",
    "read_audit",
    "report",
    "verify_access_token",
]
