"""benchmarks/profile_summary.py: py-spy's collapsed stacks summed by work and by package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("profile_summary", ROOT / "benchmarks" / "profile_summary.py")
profile_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile_summary)

STACKS = """\
run (kopf/_core/running.py:10);on_job (stepflow/operator/watch_events.py:5);dumps (json/__init__.py:3) 3
worker (threading.py:1);reconcile (stepflow/operator/reconcile.py:9);decide (stepflow/engine/rules.py:2) 5
worker (threading.py:1);reconcile (stepflow/operator/reconcile.py:9);record (stepflow/operator/record.py:4);\
request (stepflow/operator/runtime/api.py:7);urlopen (urllib3/poolmanager.py:1) 2
"""


def test_inclusive_rows_nest_and_self_rows_add_up(tmp_path):
    path = tmp_path / "profile.txt"
    path.write_text(STACKS)
    inclusive, own, total = profile_summary.summarize(profile_summary.samples(path))
    assert total == 10
    assert inclusive["kopf: watch streams and event dispatch"] == 30
    assert inclusive["the reconcile (operator/reconcile.py)"] == 70
    assert inclusive["  record: the status patch and Events"] == 20
    assert inclusive["API calls (runtime/api.py and below)"] == 20
    assert (own["json"], own["stepflow"], own["urllib3, ssl, http"]) == (30, 50, 20)
    assert sum(own.values()) == 100
