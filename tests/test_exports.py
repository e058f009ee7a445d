"""The public names are exactly those re-exported in each package's __all__."""

from __future__ import annotations

import importlib
import inspect

import pytest

import jitchaos
from jitchaos.errors import JitchaosError

EXPECTED = {
    "jitchaos": {
        "AppliedFault",
        "Decision",
        "Failure",
        "History",
        "AuthChaosMachine",
        "ClientChaosMachine",
        "ViolationFound",
        "VacuousRun",
        "RunReport",
        "report",
        "VIOLATION_KINDS",
        "FINDINGS",
        "Forged",
        "Violation",
        "check",
        "Broker",
        "BrokerError",
        "Credential",
        "Finding",
        "KeyPublished",
        "KeyWithdrawn",
        "Leased",
        "PostTestAudit",
        "audit_grants",
        "AtStep",
        "AtTime",
        "OnEvent",
        "OnRequest",
        "Schedule",
        "Scheduled",
        "Trigger",
        "AuditError",
        "AuditLog",
        "AuditLogError",
        "AuditReport",
        "ChaosProxy",
        "Clock",
        "ConfigError",
        "ControlError",
        "OffsetClock",
        "ProxyClient",
        "Expired",
        "Grant",
        "Granted",
        "GrantRequest",
        "Policy",
        "InvalidArgument",
        "InvalidToken",
        "IssuedToken",
        "JitchaosError",
        "KeyRing",
        "Ledger",
        "LedgerError",
        "LedgerEvent",
        "MalformedLine",
        "ManualClock",
        "Narrowed",
        "Outcome",
        "Principal",
        "PrincipalKind",
        "Refreshed",
        "Returned",
        "Revoked",
        "SigningKey",
        "SystemClock",
        "TokenKind",
        "TokenRecord",
        "TokenStatus",
        "Verdict",
        "Widened",
        "Secret",
        "fingerprint",
        "mint_access_token",
        "read_audit",
        "verify_access_token",
    },
    "jitchaos.idp": {
        "ClientConfig",
        "EmbeddedIdP",
        "IdPConfig",
        "UserConfig",
        "parse_client",
        "parse_user",
    },
    "jitchaos.strategies": {
        "ATTACKS",
        "FORGERIES",
        "HostileToken",
        "alg_none_tokens",
        "audience_confusion_tokens",
        "claims",
        "edited_payload_tokens",
        "embedded_jwk_tokens",
        "faults",
        "grants",
        "header_oddity_tokens",
        "hostile_tokens",
        "jku_tokens",
        "key_confusion_tokens",
        "kid_injection_tokens",
        "policies",
        "principals",
        "schedules",
        "scope_shape_tokens",
        "scopes",
        "signing_keys",
        "stripped_signature_tokens",
        "temporal_edge_tokens",
        "token_type_confusion_tokens",
        "tokens",
        "weak_hmac_tokens",
    },
    "jitchaos.faults": {
        "ENDPOINTS",
        "FAULTS",
        "AnyFault",
        "ClockSkew",
        "Endpoint",
        "Expire",
        "Fault",
        "HoldRefresh",
        "Latency",
        "Narrow",
        "Outage",
        "Revoke",
        "RotateKeys",
        "Answer",
        "Effect",
        "Exchange",
        "Issue",
        "NotApplicable",
        "World",
    },
    "jitchaos.notebook": {
        "Repro",
        "audit_notebook",
        "load_failure",
        "plot_timeline",
        "replay_lines",
        "repro_notebook",
        "write_notebook",
        "write_repro",
    },
    "jitchaos.proxy": {"ChaosProxy", "ProxyClient"},
    "jitchaos.errors": {
        "AuditError",
        "BrokerError",
        "AuditLogError",
        "ConfigError",
        "ControlError",
        "InvalidArgument",
        "InvalidToken",
        "JitchaosError",
        "LedgerError",
    },
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_exported_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPECTED[module_name]
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", module_name).startswith("jitchaos")
    }
    public -= {"annotations"}
    assert public <= set(module.__all__), public - set(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name)


def test_error_tree() -> None:
    from hypothesis.errors import InvalidArgument as HypothesisInvalidArgument

    assert issubclass(jitchaos.InvalidArgument, HypothesisInvalidArgument)
    assert issubclass(jitchaos.InvalidArgument, TypeError)
    for error, builtin in (
        (jitchaos.ConfigError, ValueError),
        (jitchaos.InvalidToken, ValueError),
        (jitchaos.LedgerError, LookupError),
        (jitchaos.AuditError, OSError),
        (jitchaos.AuditLogError, ValueError),
        (jitchaos.ControlError, ConnectionError),
        (jitchaos.BrokerError, ConnectionError),
    ):
        assert issubclass(error, JitchaosError)
        assert issubclass(error, builtin)
        assert error.__name__ in (jitchaos.errors.__doc__ or "")


def test_judging_loads_no_server_code() -> None:
    # The checker, the audits, the report and the records they read are the core: a program
    # that judges a list of decisions never loads the proxy, the IdP or their HTTP stacks.
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from jitchaos import check, audit_grants, read_audit, report, Decision, History, Ledger\n"
        "import jitchaos._notebook, jitchaos._post_audit, jitchaos._report\n"
        "servers = ('aiohttp', 'httptools', 'jitchaos.proxy', 'jitchaos.idp',\n"
        "           'jitchaos._stateful')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in servers\n"
        "             or m.startswith(servers)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]", loaded
    # And the lazy names still resolve to the real classes.
    from jitchaos.proxy import ChaosProxy

    assert jitchaos.ChaosProxy is ChaosProxy
    assert "ChaosProxy" in dir(jitchaos)


def test_the_failure_record_chain_runs_one_way() -> None:
    # The record knows no machine; the machines know the record, not the replay; only the
    # replay, the runner and the demo know the machines (also inside functions).
    import ast
    from pathlib import Path

    package = Path(jitchaos.__file__).parent

    def imports(module: str) -> set[str]:
        tree = ast.parse((package / f"{module}.py").read_text())
        return {
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jitchaos")
        }

    machines = {"jitchaos._stateful", "jitchaos._repro", "jitchaos._run", "jitchaos._demo"}
    assert not imports("_failure") & machines
    assert not imports("_stateful") & {"jitchaos._repro", "jitchaos._run", "jitchaos._demo"}
    assert "._actions" not in (package / "_repro.py").read_text()
