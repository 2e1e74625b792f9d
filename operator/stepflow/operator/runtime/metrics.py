"""The runtime's own Prometheus metrics: the API's errors and the leadership.

The names keep the operator's prefix (they are documented in the README with the rest); the
workflow metrics live in :mod:`stepflow.operator.metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LEADER = Gauge(
    "stepflow_leader", "1 while this replica leads (always, without --leader-elect); 0 on a standby.")
API_ERRORS = Counter(
    "stepflow_api_errors_total", "Kubernetes API errors seen by the operator, by HTTP status code.", ["code"])
