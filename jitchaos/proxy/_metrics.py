"""Counters for staging dashboards, served by the control API in Prometheus text format.

prometheus_client writes the exposition format (escaping, ``_total`` suffixes, HELP/TYPE lines)
so we do not; each proxy has its own registry, so several proxies in one process never mix.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Requests by side and target, faults applied by kind, decisions by service and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Labelled children by (side, target), ("fault", kind), ("decision:SERVICE", status).
        self._children: dict[tuple[str, str], Any] = {}
        self._requests = Counter(
            "jitchaos_proxy_requests",
            "Requests the proxy received, by side (idp, service) and endpoint or service.",
            ["side", "target"],
            registry=self.registry,
        )
        self._faults = Counter(
            "jitchaos_faults_applied",
            "Faults that fired and acted, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self._decisions = Counter(
            "jitchaos_decisions",
            "Answers of the services under test, by service and HTTP status.",
            ["service", "status"],
            registry=self.registry,
        )

    def request(self, side: str, target: str) -> None:
        child = self._children.get((side, target))
        if child is None:  # labels() takes a lock and builds a key every time
            child = self._children[(side, target)] = self._requests.labels(side, target)
        child.inc()

    def fault(self, kind: str) -> None:
        child = self._children.get(("fault", kind))
        if child is None:
            child = self._children[("fault", kind)] = self._faults.labels(kind)
        child.inc()

    def decision(self, service: str, status: int) -> None:
        key = (f"decision:{service}", str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._decisions.labels(service, str(status))
        child.inc()
        self.request("service", service)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every counter."""
        return generate_latest(self.registry)
