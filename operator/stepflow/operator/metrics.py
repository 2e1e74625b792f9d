"""Prometheus metrics of the operator (names documented in the README).

The runtime's own, the API's errors and the leadership, are in
:mod:`stepflow.operator.runtime.metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

STEP_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

STEP_DURATION = Histogram(
    "stepflow_step_duration_seconds", "Time from a step's start to its end, by step type and outcome.",
    ["type", "outcome"], buckets=STEP_BUCKETS)
STEP_WAIT = Histogram(
    "stepflow_step_wait_seconds",
    "Time a step waited for a slot after its prerequisites were met "
    "(maxConcurrency or the operator-wide cap).",
    buckets=(0, *STEP_BUCKETS))
MATRIX_COPIES = Histogram(
    "stepflow_matrix_copies", "Copies per matrix step expanded (M1, M4); each copy counts as a step "
    "in the other metrics.", buckets=(1, 2, 5, 10, 25, 50, 100, 256))
RUNNING_STEPS = Gauge("stepflow_running_steps", "Steps running now, across all workflows.")
RUNNING_LIMIT = Gauge(
    "stepflow_running_steps_limit",
    "The operator-wide cap on running steps (--max-running-jobs); -1 if unlimited.")
RECONCILE_DURATION = Histogram(
    "stepflow_reconcile_duration_seconds", "Time one reconcile of one workflow takes, API calls included.",
    buckets=FAST_BUCKETS)


class WorkflowPhases(Collector):
    """``stepflow_workflows{phase}``, counted from the operator's cache at scrape time."""

    def __init__(self, phases: Callable[[], Iterable[str]]):
        self._phases = phases

    def collect(self):
        family = GaugeMetricFamily("stepflow_workflows", "Workflows known to the operator, by phase.",
                                   labels=["phase"])
        counts = Counter(self._phases())
        for phase in ("Pending", "Running", "Suspended", "Succeeded", "Failed"):
            family.add_metric([phase], counts.get(phase, 0))
        yield family


_registered: WorkflowPhases | None = None


def watch_phases(phases: Callable[[], Iterable[str]]) -> None:
    """Point the phase gauge at the current operator's cache (idempotent across restarts in tests)."""
    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    _registered = WorkflowPhases(phases)
    REGISTRY.register(_registered)
