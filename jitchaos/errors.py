"""Errors raised by jitchaos's Python API.

What the IdP or the proxy answers on the wire is a response (RFC 6749 §5.2 JSON), never one of
these. Each error also subclasses the builtin it resembles, so callers may catch either::

    JitchaosError
    ├── InvalidArgument      (also hypothesis.errors.InvalidArgument, a TypeError)
    ├── ConfigError          (also ValueError)   bad clients, users, TTLs, key algorithms
    ├── InvalidToken         (also ValueError)   a token that fails verification
    ├── LedgerError          (also LookupError)  an operation names no known grant or token
    ├── AuditError           (also OSError)      the audit sink cannot be written; action refused
    ├── AuditLogError        (also ValueError)   an audit file cannot be read or parsed
    ├── ControlError         (also ConnectionError) the proxy's control API refused a request
    └── BrokerError          (also ConnectionError) the IdP refused or failed a broker request
"""

from __future__ import annotations

from hypothesis.errors import InvalidArgument as _HypothesisInvalidArgument

__all__ = [
    "AuditError",
    "AuditLogError",
    "BrokerError",
    "ConfigError",
    "ControlError",
    "InvalidArgument",
    "InvalidToken",
    "JitchaosError",
    "LedgerError",
]


class JitchaosError(Exception):
    """The root of every error jitchaos raises on purpose."""


class InvalidArgument(JitchaosError, _HypothesisInvalidArgument):
    """A function was called with an argument it cannot use; the message names it and its value."""


class ConfigError(JitchaosError, ValueError):
    """A configuration value (client, user, TTL, key algorithm, ...) is not valid."""


class InvalidToken(JitchaosError, ValueError):
    """A token failed verification: bad signature, issuer or audience, expired, or malformed."""


class LedgerError(JitchaosError, LookupError):
    """A ledger operation named a grant, token or principal that the ledger does not hold."""


class AuditError(JitchaosError, OSError):
    """The audit sink could not be written, so the action it would have recorded was refused."""


class AuditLogError(JitchaosError, ValueError):
    """An audit log file is missing, unreadable or not JSON Lines."""


class ControlError(JitchaosError, ConnectionError):
    """The chaos proxy's control API refused a request or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status it answered, or None when it could not be reached."""


class BrokerError(JitchaosError, ConnectionError):
    """The IdP refused or failed a request of the credential broker (the message says which
    and why)."""
