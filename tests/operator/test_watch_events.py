"""Which watch events change the cache and wake a workflow (mirror: operator/watch_events.py)."""

from __future__ import annotations

from typing import Any

import builders
from stepflow.operator.pools import Pools
from stepflow.operator.watch_events import on_job, on_pod, on_pool, on_workflow
from stepflow.plan import compile_workflow
from watch_fakes import operator

KEY = ("default", "wf")


def event(kind: str | None, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def workflow(version: str, uid: str = "w1") -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": "wf", "uid": uid, "resourceVersion": version}}


def job(version: str, labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    labels = {"stepflow.dev/workflow": "wf"} if labels is None else labels
    return {"metadata": {"namespace": "default", "name": "wf-1-a", "uid": "j1", "resourceVersion": version,
                         "labels": labels}, "status": status}


def test_a_workflow_change_wakes_it_and_the_echo_of_our_own_write_does_not():
    ops = operator()
    on_workflow(ops, event("ADDED", workflow("1")))
    on_workflow(ops, event("MODIFIED", workflow("1")))  # the echo
    assert ops.controller.woken == [KEY]
    on_workflow(ops, event("DELETED", workflow("2")))
    assert ops.store.workflow(KEY) is None
    assert ops.controller.woken == [KEY, KEY]  # the reconcile sees it gone and frees its slots


def test_a_listed_workflow_or_job_is_bookkept_for_re_list_detection():
    ops = operator()
    on_workflow(ops, event(None, workflow("1")))
    on_job(ops, event(None, job("2")))
    assert ops.controller.kinds_listed == ["workflows", "jobs"]
    assert ops.store.end_listing("workflows") == set() and ops.store.end_listing("jobs") == set()


def test_only_job_changes_the_reconcile_reads_wake_the_workflow_and_foreign_jobs_are_ignored():
    ops = operator()
    on_job(ops, event("ADDED", job("1", labels={})))
    assert ops.controller.woken == [] and ops.store.jobs(KEY) == {}
    on_job(ops, event("ADDED", job("1")))
    on_job(ops, event("MODIFIED", job("2", active=1)))  # pod bookkeeping only
    assert ops.controller.woken == [KEY]
    on_job(ops, event("MODIFIED", job("3", failed=1)))
    on_job(ops, event("DELETED", job("4", failed=1)))
    assert ops.controller.woken == [KEY] * 3 and ops.store.jobs(KEY) == {}


def test_the_complete_of_a_job_whose_pod_succeeded_wakes_nobody():
    """The pod's success ended the step and woke the workflow a second earlier: the Job's
    SuccessCriteriaMet and Complete change nothing the engine reads."""
    ops = operator()
    on_job(ops, event("ADDED", job("1", active=1)))
    pod = {"metadata": {"namespace": "default", "name": "wf-1-a-x", "creationTimestamp": "2027-01-15T08:00Z",
                        "labels": {"stepflow.dev/workflow": "wf", "batch.kubernetes.io/job-name": "wf-1-a"},
                        "ownerReferences": [{"kind": "Job", "name": "wf-1-a", "uid": "j1"}]},
           "status": {"phase": "Succeeded", "containerStatuses": [
               {"name": "step", "state": {"terminated": {"exitCode": 0}}}]}}
    on_pod(ops, event("MODIFIED", pod))
    assert ops.controller.woken == [KEY, KEY]
    on_job(ops, event("MODIFIED", job("2", conditions=[{"type": "SuccessCriteriaMet", "status": "True"}])))
    on_job(ops, event("MODIFIED", job("3", succeeded=1, conditions=[
        {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}])))
    assert ops.controller.woken == [KEY, KEY]
    on_job(ops, event("MODIFIED", job("4", failed=1, conditions=[{"type": "Failed", "status": "True"}])))
    assert ops.controller.woken == [KEY] * 3  # anything but a success still wakes it


def test_an_ended_pod_wakes_its_workflow():
    ops = operator()
    pod = {"metadata": {"namespace": "default", "name": "wf-1-a-x", "labels": {
        "stepflow.dev/workflow": "wf", "batch.kubernetes.io/job-name": "wf-1-a"}},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
    on_pod(ops, event("ADDED", pod))
    assert ops.controller.woken == [KEY]
    on_pod(ops, event("ADDED", {**pod, "metadata": {**pod["metadata"], "labels": {}}}))
    assert ops.controller.woken == [KEY]


def test_a_pool_wakes_the_workflows_that_name_it_and_a_bad_limit_grants_nothing():
    ops = operator()
    pools: Pools = ops.reconciler.pools
    plan = compile_workflow(builders.workflow(builders.step("deploy", pool="deploys"), name="wf"))
    pools.grant(KEY, plan, [], {})  # a reconcile of a workflow whose plan names the pool
    pool = {"metadata": {"namespace": "default", "name": "deploys"}, "spec": {"limit": 1}}
    on_pool(ops, event("ADDED", pool))
    assert ops.controller.woken == [KEY] and pools.queue.limits[("default", "deploys")] == 1
    on_pool(ops, event("MODIFIED", {**pool, "spec": {"limit": True}}))
    assert ("default", "deploys") not in pools.queue.limits
    on_pool(ops, event("MODIFIED", pool))
    on_pool(ops, event("DELETED", pool))
    assert ("default", "deploys") not in pools.queue.limits
    assert ops.controller.woken == [KEY, KEY]
