"""One reconcile at a time, against a scripted API: the cases a live cluster makes rare.

The e2e tests cover the usual flow; these pin down races and partial failures deterministically
(a refused Job, a Job left by a dead operator or by an earlier Workflow of the same name, a spec
change that lands between the cache and the status write).
"""

from __future__ import annotations

import copy
from typing import Any

from operator_harness import workflow
from stepflow.engine import SlotQueue
from stepflow.operator.api import Conflict, Invalid
from stepflow.operator.events import EventRecorder
from stepflow.operator.jobs import build_job
from stepflow.operator.reconcile import NAME_TAKEN_RETRY, Reconciler
from stepflow.operator.store import Store
from stepflow.plan import compile_workflow
from stepflow.status import parse_time, rfc3339

NOW = 1_800_000_000.0
KEY = ("default", "wf")


class ScriptedApi:
    """Records what the reconcile asks for; tests preset Jobs that already exist."""

    def __init__(self, workflow_body: dict[str, Any]):
        self.workflow = workflow_body
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.refuse: str | None = None  # a 422 message for every create
        self.events: list[dict[str, Any]] = []  # what the Job controller posted
        self.event_reads = 0
        self.pod_lists = 0
        self.bump_generation_on_patch = False

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        if self.refuse:
            raise Invalid(self.refuse)
        if name in self.jobs:
            raise Conflict(name)
        job = {**copy.deepcopy(manifest), "status": {}}
        job["metadata"].update(resourceVersion="1", creationTimestamp=rfc3339(NOW))
        self.jobs[name] = job
        self.created.append(name)
        return job

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.jobs[name])

    def job_events(self, namespace: str, job: str, reason: str) -> list[dict[str, Any]]:
        self.event_reads += 1
        return [e for e in self.events if e["reason"] == reason and e["involvedObject"]["name"] == job]

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        self.pod_lists += 1
        return [{"metadata": {"creationTimestamp": rfc3339(NOW)}, "status": {"containerStatuses": [
            {"name": "step", "state": {"terminated": {"exitCode": 3, "message": "disk full"}}}]}}]

    def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        status = self.workflow.setdefault("status", {})
        _merge(status, patch)
        meta = self.workflow["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if self.bump_generation_on_patch:  # a user's edit committed just before our patch
            meta["generation"] += 1
            self.workflow["spec"]["suspend"] = True
        return copy.deepcopy(self.workflow)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def setup(steps: list[dict[str, Any]], uid: str = "uid-new") -> tuple[Reconciler, ScriptedApi, Store]:
    body = workflow("wf", steps)
    body["metadata"].update(uid=uid, generation=1, resourceVersion="1")
    api = ScriptedApi(body)
    store = Store(clock=lambda: NOW)
    store.put_workflow(copy.deepcopy(body))
    reconciler = Reconciler(api, store, EventRecorder(lambda event: None), SlotQueue(None),
                            wake=lambda key: None, clock=lambda: NOW)
    return reconciler, api, store


def existing_job(body: dict[str, Any], step: str, *, owner_uid: str, started: float,
                 outcome: str | None = None) -> dict[str, Any]:
    """A Job as an earlier operator (or an earlier Workflow of this name) left it."""
    plan = compile_workflow(body)
    job = build_job(plan, plan.step_by_name[step], namespace="default", owner_uid=owner_uid,
                    generation=1)
    job["metadata"].update(resourceVersion="5", creationTimestamp=rfc3339(started)[:19] + "Z")
    job["status"] = {"startTime": rfc3339(started)[:19] + "Z"}  # whole seconds, as Kubernetes
    if outcome:
        job["status"]["conditions"] = [{"type": outcome, "status": "True"}]
        job["status"]["completionTime"] = rfc3339(started + 1)[:19] + "Z"
        job["status"]["failed" if outcome == "Failed" else "succeeded"] = 1
    return job


def test_a_refused_job_skips_its_dependents_in_the_same_status_write():
    reconciler, api, _ = setup([{"name": "a", "script": "true"}, {"name": "b", "script": "true"}])
    api.refuse = "quota exceeded"
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert status["phase"] == "Failed"
    assert status["steps"]["a"]["reason"] == "InvalidJob"
    assert status["steps"]["b"]["phase"] == "Skipped"
    assert status["progress"] == "2/2"


def test_a_job_left_by_an_earlier_workflow_of_the_same_name_is_never_adopted():
    reconciler, api, _ = setup([{"name": "a", "script": "true"}])
    old = existing_job(api.workflow, "a", owner_uid="uid-old", started=NOW - 60, outcome="Complete")
    api.jobs[old["metadata"]["name"]] = old
    delay = reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert entry["phase"] == "Pending" and entry["reason"] == "JobNameTaken"
    assert api.workflow["status"]["phase"] not in ("Succeeded", "Failed")
    # The message counts what is observed: nothing runs (it said "1 of 1 step(s) running").
    assert api.workflow["status"]["message"].startswith("0 of 1 step(s) running")
    assert delay == NAME_TAKEN_RETRY  # checks again later, without a hot loop
    assert old["metadata"]["name"] in api.jobs  # not ours to delete

    del api.jobs[old["metadata"]["name"]]  # garbage collection, or the user, removed it
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Running"
    assert api.created == [old["metadata"]["name"]]


def test_a_foreign_job_in_the_cache_is_neither_observed_nor_deleted():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    old = existing_job(api.workflow, "a", owner_uid="uid-old", started=NOW - 60)  # still running
    api.jobs[old["metadata"]["name"]] = old
    store.put_job(KEY, old)
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["reason"] == "JobNameTaken"
    assert old["metadata"]["name"] in api.jobs


def test_jobs_of_a_dead_operator_are_adopted_with_their_own_times_and_failure_details():
    # The first operator created both Jobs and died before any status write; a ran and failed.
    reconciler, api, _ = setup([{"name": "a", "script": "true", "parallel": True},
                                {"name": "b", "script": "true", "parallel": True}])
    for step, outcome in (("a", "Failed"), ("b", None)):
        job = existing_job(api.workflow, step, owner_uid="uid-new", started=NOW - 30, outcome=outcome)
        api.jobs[job["metadata"]["name"]] = job
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert api.created == []  # nothing duplicated
    a, b = status["steps"]["a"], status["steps"]["b"]
    assert a["phase"] == "Failed" and a["exitCode"] == 3 and a["terminationMessage"] == "disk full"
    assert b["phase"] == "Running"
    # The run began no later than the Jobs it adopted, not when this operator got to it.
    assert parse_time(status["startedAt"]) <= parse_time(a["startedAt"]) <= NOW - 30
    assert parse_time(a["startedAt"]) < parse_time(a["finishedAt"]) < NOW


def test_a_spec_change_carried_back_by_our_own_status_patch_is_reconciled_again():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    api.bump_generation_on_patch = True
    delay = reconciler.reconcile(KEY)
    assert delay == 0.0  # the watch event of that change is older than the cache now
    assert store.workflow(KEY)["spec"]["suspend"] is True


def _step_pod(job: dict[str, Any], status: dict[str, Any], deleting: bool = False,
              uid: str | None = None) -> dict[str, Any]:
    meta = {"name": job["metadata"]["name"] + "-x", "creationTimestamp": rfc3339(NOW),
            "labels": {"batch.kubernetes.io/job-name": job["metadata"]["name"]},
            "ownerReferences": [{"kind": "Job", "name": job["metadata"]["name"],
                                 "uid": uid if uid is not None else job["metadata"].get("uid", "")}]}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "status": status}


def test_a_job_that_cannot_create_its_pod_shows_the_job_controllers_event_and_keeps_waiting():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    job = existing_job(api.workflow, "a", owner_uid="uid-new", started=NOW - 10)
    job["status"] = {}  # no pod: nothing active, nothing ended
    api.jobs[job["metadata"]["name"]] = job
    store.put_job(KEY, job)
    assert store.waiting_jobs(NOW) == {KEY}  # the sweep reconciles it: the Job never changes
    message = 'Error creating: pods "wf-1-a-" is forbidden: error looking up service account default/ci'
    api.events.append({"reason": "FailedCreate", "message": message,
                       "involvedObject": {"kind": "Job", "name": job["metadata"]["name"],
                                          "uid": job["metadata"].get("uid", "")}})
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["reason"], entry["message"]) == ("Running", "PodCreateFailed", message)
    reconciler.reconcile(KEY)
    assert api.event_reads == 1  # read again only after CREATE_CHECK_INTERVAL

    pod = _step_pod(job, {"phase": "Pending"})
    assert store.put_pod(KEY, pod)  # the pod came after all: reconciled at once
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"].get("reason", "") == ""


def test_an_unschedulable_pod_shows_the_schedulers_reason():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    reconciler.reconcile(KEY)
    job = api.jobs["wf-1-a"]
    message = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    unschedulable = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}
    assert store.put_pod(KEY, _step_pod(job, unschedulable))
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["reason"], entry["message"]) == ("Running", "Unschedulable", message)
    assert api.event_reads == 0


def test_a_pending_pod_the_watch_does_not_show_is_read_and_its_reason_goes_once_it_is_ready():
    """Tuned, the pod watch sees only pods that have ended (handlers.POD_PHASES_WATCHED): a Job
    with no ready pod for a while is swept, and the reconcile lists its pods, backing off."""
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    job = existing_job(api.workflow, "a", owner_uid="uid-new", started=NOW - 10)
    job["status"]["active"] = 1  # a pod exists; it is not ready
    api.jobs[job["metadata"]["name"]] = job
    store.put_job(KEY, job)
    message = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    pending = _step_pod(job, {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]})
    lists = []
    api.job_pods = lambda namespace, name: lists.append(name) or [pending]
    assert store.waiting_jobs(NOW) == {KEY}
    requeue = reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["reason"], entry["message"]) == ("Running", "Unschedulable", message)
    assert requeue is not None and requeue <= 5.0  # the reason must not outlive the trouble
    reconciler.reconcile(KEY)
    assert lists == [job["metadata"]["name"]] and api.event_reads == 0  # backing off; not pod-less

    ready = copy.deepcopy(job)
    ready["status"]["ready"] = 1
    ready["metadata"]["resourceVersion"] = "9"
    store.put_job(KEY, ready)
    assert store.waiting_jobs(NOW) == set()
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"].get("reason", "") == ""
    assert len(lists) == 1


def test_a_timed_out_steps_exit_code_comes_from_its_deleted_pod():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    reconciler.reconcile(KEY)
    job = api.jobs["wf-1-a"]
    terminated = {"phase": "Failed", "containerStatuses": [
        {"name": "step", "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]}
    pod = _step_pod(job, terminated, deleting=True)
    assert store.put_pod(KEY, pod)  # ended while being deleted: its Job's Failed may be handled
    assert not store.put_pod(KEY, pod, deleted=True)  # gone from the API; the report stays
    job = copy.deepcopy(job)
    job["status"] = {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
                                    {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
                     "failed": 1}
    job["metadata"]["resourceVersion"] = "9"
    store.put_job(KEY, job)
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["reason"], entry["exitCode"]) == ("Failed", "DeadlineExceeded", 143)
    assert api.pod_lists == 0  # from the watch's record; no list


TIMED_OUT = {"conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
                            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}], "failed": 1}
STOPPED = {"phase": "Failed", "containerStatuses": [
    {"name": "step", "state": {"terminated": {"exitCode": 143, "reason": "Error"}}}]}


def _timed_out(uid: str) -> tuple[Reconciler, ScriptedApi, Store, dict[str, Any]]:
    """A step whose Job failed on its deadline, with no pod left to list."""
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    api.job_pods = lambda namespace, job: []
    reconciler.reconcile(KEY)
    job = copy.deepcopy(api.jobs["wf-1-a"])
    job["metadata"].update(uid=uid, resourceVersion="9")
    job["status"] = TIMED_OUT
    store.put_job(KEY, job)
    return reconciler, api, store, job


def test_a_failed_jobs_exit_code_that_arrives_after_its_failure_is_recorded():
    """The Job watch and the pod watch are two streams: Failed can come first, and the pod,
    already deleted, is no longer there to list."""
    reconciler, api, store, job = _timed_out("job-1")
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert entry["phase"] == "Failed" and "exitCode" not in entry
    assert store.put_pod(KEY, _step_pod(job, STOPPED, deleting=True))  # its final state, late
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["exitCode"] == 143


def test_pods_of_an_earlier_job_of_the_same_name_say_nothing_of_this_one():
    reconciler, api, store, job = _timed_out("job-new")
    store.put_pod(KEY, _step_pod(job, STOPPED, uid="job-old"))  # left by a deleted Workflow's Job
    reconciler.reconcile(KEY)
    assert "exitCode" not in api.workflow["status"]["steps"]["a"]


def test_pod_reports_without_a_job_are_pruned_on_the_second_sweep():
    store = Store(clock=lambda: NOW)
    store.put_workflow({"metadata": {"namespace": "default", "name": "wf", "resourceVersion": "1"}})
    job = {"metadata": {"name": "wf-1-a", "uid": "j", "resourceVersion": "2"}, "status": {}}
    store.put_pod(KEY, _step_pod(job, STOPPED))  # listed before its Job, after a restart
    assert store.prune_pods() == 0
    store.put_job(KEY, job)
    assert store.prune_pods() == 0 and store.pod_reports(KEY, "wf-1-a")
    store.drop_job(KEY, "wf-1-a")
    store.put_pod(KEY, _step_pod(job, STOPPED), deleted=True)  # a late event of a deleted Job's pod
    assert store.prune_pods() == 0
    assert store.prune_pods() == 1 and store.pod_reports(KEY, "wf-1-a") == []
