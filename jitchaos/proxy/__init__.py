"""The chaos proxy: between services and their IdP, and in front of the services. What it
records (decisions, applied faults, the history) is core vocabulary: ``jitchaos.Decision``,
``jitchaos.AppliedFault``, ``jitchaos.History``."""

from jitchaos.proxy._control import ProxyClient
from jitchaos.proxy._proxy import ChaosProxy

__all__ = ["ChaosProxy", "ProxyClient"]
