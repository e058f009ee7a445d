"""Counters for staging dashboards, served by the control API in Prometheus text format.

The proxy counts in plain dicts on its hot path (a dict increment, where a prometheus_client
``Counter`` child takes a lock and checks its state per ``inc``); prometheus_client turns them
into the exposition format (escaping, ``_total`` suffixes, HELP/TYPE lines) when scraped, so we
do not write it. Each proxy has its own registry, so several proxies in one process never mix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# name, help, label names
_FAMILIES = (
    (
        "jitchaos_proxy_requests",
        "Requests the proxy received, by side (idp, service) and endpoint or service.",
        ("side", "target"),
    ),
    ("jitchaos_faults_applied", "Faults that fired and acted, by kind.", ("kind",)),
    (
        "jitchaos_decisions",
        "Answers of the services under test, by service and HTTP status.",
        ("service", "status"),
    ),
)


class Metrics(Collector):
    """Requests by side and target, faults applied by kind, decisions by service and status."""

    def __init__(self) -> None:
        # Per family: label values -> [count, when first counted (the _created sample)].
        self._counts: tuple[dict[tuple[str, ...], list[float]], ...] = ({}, {}, {})
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def request(self, side: str, target: str) -> None:
        self._count(0, (side, target))

    def fault(self, kind: str) -> None:
        self._count(1, (kind,))

    def decision(self, service: str, status: int) -> None:
        self._count(2, (service, str(status)))
        self._count(0, ("service", service))

    def _count(self, family: int, labels: tuple[str, ...]) -> None:
        # Faults applied through the Python API count from the caller's thread.
        with self._lock:
            entry = self._counts[family].get(labels)
            if entry is None:
                entry = self._counts[family][labels] = [0.0, time.time()]
            entry[0] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        for (name, helps, label_names), counts in zip(_FAMILIES, self._counts, strict=True):
            family = CounterMetricFamily(name, helps, labels=label_names)
            with self._lock:
                samples = [(labels, entry[0], entry[1]) for labels, entry in counts.items()]
            # As prometheus_client's own counters: no _created series after
            # PROMETHEUS_DISABLE_CREATED_SERIES or disable_created_metrics().
            with_created = getattr(prometheus_client.metrics, "_use_created", True)
            for labels, value, created in sorted(samples):
                family.add_metric(labels, value, created=created if with_created else None)
            yield family

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every counter."""
        return generate_latest(self.registry)
