"""Workflows whose Jobs wait for a pod are woken by the sweep (mirror: operator/pod_sweeper.py)."""

from __future__ import annotations

from stepflow.operator.pod_sweeper import sweep
from stepflow.operator.store import Store
from stepflow.status import parse_time

CREATED = "2026-01-01T00:00:00Z"
KEY = ("ns", "wf")


def job(name: str, **status: object) -> dict:
    meta = {"name": name, "resourceVersion": "1", "creationTimestamp": CREATED}
    return {"metadata": meta, "status": status}


def pod(job_name: str) -> dict:
    return {"metadata": {"name": f"{job_name}-x", "labels": {"batch.kubernetes.io/job-name": job_name}},
            "status": {"containerStatuses": [{"name": "step", "state": {"terminated": {"exitCode": 0}}}]}}


def test_a_job_left_without_a_ready_pod_wakes_its_workflow_on_each_sweep():
    now = [parse_time(CREATED) + 1]
    store, woken = Store(clock=lambda: now[0]), []
    store.put_job(KEY, job("wf-1-a"))
    store.put_job(("ns", "other"), job("other-1-a", ready=1))  # its pod runs: nothing to look into
    sweep(store, woken.append)
    assert woken == []  # within the grace a Job gets to create its pod
    now[0] += 5
    sweep(store, woken.append)
    sweep(store, woken.append)
    assert woken == [KEY, KEY]


def test_reports_of_pods_whose_job_is_gone_are_pruned_on_the_second_sweep():
    store = Store()
    store.put_pod(KEY, pod("wf-1-gone"))
    sweep(store, lambda key: None)
    assert store.pod_reports(KEY, "wf-1-gone")  # the Job may just be listed after its pods
    sweep(store, lambda key: None)
    assert store.pod_reports(KEY, "wf-1-gone") == []
