"""deploy/grafana/stepflow-dashboard.json: valid JSON that graphs the operator's metrics."""

from __future__ import annotations

import json
import re

import pytest

from manifests.checks import DEPLOY, ROOT

DASHBOARD = DEPLOY / "grafana" / "stepflow-dashboard.json"
METRICS = {  # name -> type, as the operator exports them
    "stepflow_workflows": "gauge",
    "stepflow_step_duration_seconds": "histogram",
    "stepflow_step_wait_seconds": "histogram",
    "stepflow_running_steps": "gauge",
    "stepflow_running_steps_limit": "gauge",
    "stepflow_reconcile_duration_seconds": "histogram",
    "stepflow_api_errors_total": "counter",
}


def _base(series: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", series)


def used_metrics() -> set[str]:
    exprs = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    return {_base(name) for expr in exprs for name in re.findall(r"\bstepflow_\w+", expr)}


def test_dashboard_graphs_every_metric_and_nothing_else():
    assert used_metrics() == set(METRICS)


def test_panels_are_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            if "histogram_quantile" in expr:
                assert "_bucket" in expr and "le" in expr


def test_operator_exports_what_the_dashboard_graphs():
    """Once the operator defines its metrics, the dashboard must use their names."""
    source = "\n".join(p.read_text() for p in (ROOT / "operator" / "stepflow").rglob("*.py"))
    defined = set(re.findall(r"[\"'](stepflow_[a-z_]+)[\"']", source))
    if not defined:
        pytest.skip("the operator defines no stepflow_* metrics yet")
    # prometheus_client adds _total to counters itself, so accept both spellings
    defined |= {name + "_total" for name in defined}
    assert used_metrics() <= defined
