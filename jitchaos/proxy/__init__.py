"""The chaos proxy: between services and their IdP, and in front of the services."""

from jitchaos.proxy._control import ProxyClient
from jitchaos.proxy._history import AppliedFault, Decision, History
from jitchaos.proxy._proxy import ChaosProxy

__all__ = ["AppliedFault", "ChaosProxy", "Decision", "History", "ProxyClient"]
