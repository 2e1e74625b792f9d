"""The observe stage: step states from Jobs and pods, the races between the two watches,
and the reads that explain a pod that cannot run."""

from __future__ import annotations

import copy
from typing import Any

from scripted_api import KEY, NOW, ScriptedApi, existing_job, setup, step_pod
from stepflow.operator.reconcile import Reconciler
from stepflow.operator.store import Store


def test_a_foreign_job_in_the_cache_is_neither_observed_nor_deleted():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    old = existing_job(api.workflow, "a", owner_uid="uid-old", started=NOW - 60)  # still running
    api.jobs[old["metadata"]["name"]] = old
    store.put_job(KEY, old)
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["reason"] == "JobNameTaken"
    assert old["metadata"]["name"] in api.jobs


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

    pod = step_pod(job, {"phase": "Pending"})
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
    assert store.put_pod(KEY, step_pod(job, unschedulable))
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["reason"], entry["message"]) == ("Running", "Unschedulable", message)
    assert api.event_reads == 0


def test_a_pending_pod_the_watch_does_not_show_is_read_and_its_reason_goes_once_it_is_ready():
    """Tuned, the pod watch sees only pods that have ended (child_watches.POD_PHASES_WATCHED): a Job
    with no ready pod for a while is swept, and the reconcile lists its pods, backing off."""
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    job = existing_job(api.workflow, "a", owner_uid="uid-new", started=NOW - 10)
    job["status"]["active"] = 1  # a pod exists; it is not ready
    api.jobs[job["metadata"]["name"]] = job
    store.put_job(KEY, job)
    message = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    pending = step_pod(job, {"phase": "Pending", "conditions": [
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
    pod = step_pod(job, terminated, deleting=True)
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
    assert store.put_pod(KEY, step_pod(job, STOPPED, deleting=True))  # its final state, late
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["exitCode"] == 143


def test_pods_of_an_earlier_job_of_the_same_name_say_nothing_of_this_one():
    reconciler, api, store, job = _timed_out("job-new")
    store.put_pod(KEY, step_pod(job, STOPPED, uid="job-old"))  # left by a deleted Workflow's Job
    reconciler.reconcile(KEY)
    assert "exitCode" not in api.workflow["status"]["steps"]["a"]


def test_pod_reports_without_a_job_are_pruned_on_the_second_sweep():
    store = Store(clock=lambda: NOW)
    store.put_workflow({"metadata": {"namespace": "default", "name": "wf", "resourceVersion": "1"}})
    job = {"metadata": {"name": "wf-1-a", "uid": "j", "resourceVersion": "2"}, "status": {}}
    store.put_pod(KEY, step_pod(job, STOPPED))  # listed before its Job, after a restart
    assert store.prune_pods() == 0
    store.put_job(KEY, job)
    assert store.prune_pods() == 0 and store.pod_reports(KEY, "wf-1-a")
    store.drop_job(KEY, "wf-1-a")
    store.put_pod(KEY, step_pod(job, STOPPED), deleted=True)  # a late event of a deleted Job's pod
    assert store.prune_pods() == 0
    assert store.prune_pods() == 1 and store.pod_reports(KEY, "wf-1-a") == []


def succeeded_with_message(message: str) -> tuple[dict[str, Any], str]:
    """A workflow whose "build" Job completed, its pod's termination message ``message`` (as the
    API serves it), and "use" reading build's tag; returns the status after the reconcile."""
    reads = {"name": "T", "valueFrom": {"stepOutput": {"step": "build", "output": "tag"}}}
    reconciler, api, store = setup([{"name": "build", "script": "true", "outputs": ["tag"]},
                                    {"name": "use", "script": "true", "env": [reads]}])
    reconciler.reconcile(KEY)
    job = api.jobs["wf-1-build"]
    job["metadata"]["resourceVersion"] = "9"
    job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    store.put_job(KEY, copy.deepcopy(job))
    store.put_pod(KEY, step_pod(job, {"containerStatuses": [
        {"name": "step", "state": {"terminated": {"exitCode": 0, "message": message}}}]}))
    reconciler.reconcile(KEY)
    return api.workflow["status"], ",".join(sorted(api.jobs))


def test_issue_28_item_7_a_nul_in_an_output_fails_the_producer_and_creates_no_consumer():
    status, jobs = succeeded_with_message("tag=v1\0evil\n")
    build = status["steps"]["build"]
    assert (build["phase"], build["reason"]) == ("Failed", "InvalidOutput")
    assert 'output "tag"' in build["message"] and "NUL" in build["message"]
    assert status["steps"]["use"]["phase"] == "Skipped" and jobs == "wf-1-build"


def test_issue_28_item_7_replacement_characters_count_as_the_bytes_they_replaced():
    status, jobs = succeeded_with_message("tag=" + "\ufffd" * 1536)  # 1.5 KB of 0xFF, as the API serves it
    assert status["steps"]["build"]["outputs"] == {"tag": "\ufffd" * 1536}, status["steps"]["build"]
    assert jobs == "wf-1-build,wf-1-use"


# A step ends when its pod Succeeds (jobs.succeeded_by_pod): the Job controller marks the Job
# Complete about a second later, which a chain would otherwise pay at every step.
SUCCEEDED_POD = {"phase": "Succeeded", "containerStatuses": [
    {"name": "step", "state": {"terminated": {"exitCode": 0, "message": ""}}}]}
FAILED_POD = {"phase": "Failed", "containerStatuses": [
    {"name": "step", "state": {"terminated": {"exitCode": 1, "message": "boom"}}}]}


def _chain() -> tuple[Reconciler, ScriptedApi, Store, dict[str, Any]]:
    reconciler, api, store = setup([{"name": "a", "script": "true"},
                                    {"name": "b", "script": "true", "dependsOn": ["a"]}])
    reconciler.reconcile(KEY)
    job = copy.deepcopy(api.jobs["wf-1-a"])
    job["status"] = {"startTime": "2027-01-15T08:00:00Z", "active": 1}
    job["metadata"]["resourceVersion"] = "2"
    store.put_job(KEY, job)
    return reconciler, api, store, job


def _update_job(store: Store, job: dict[str, Any], status: dict[str, Any], version: str) -> None:
    job = copy.deepcopy(job)
    job["status"] = status
    job["metadata"]["resourceVersion"] = version
    store.put_job(KEY, job)


def test_a_step_ends_when_its_pod_succeeds_before_its_job_is_complete():
    reconciler, api, store, job = _chain()
    assert store.put_pod(KEY, step_pod(job, SUCCEEDED_POD))  # wakes the workflow at once
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert entry["phase"] == "Succeeded"
    assert "wf-1-b" in api.created and api.pod_lists == 0
    patches = api.workflow["metadata"]["resourceVersion"]
    _update_job(store, job, {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}, "3")
    reconciler.reconcile(KEY)  # the Job's Complete, a second later, changes nothing
    assert api.workflow["metadata"]["resourceVersion"] == patches
    assert api.created == ["wf-1-a", "wf-1-b"]


def test_a_pod_that_exits_0_while_being_stopped_does_not_end_its_step():
    """The Job controller deletes the pod of a Job past its deadline; a step that traps SIGTERM
    exits 0. The step failed all the same: the Job's FailureTarget came first."""
    reconciler, api, store, job = _chain()
    store.put_pod(KEY, step_pod(job, SUCCEEDED_POD, deleting=True))
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Running"
    assert api.created == ["wf-1-a"]


def test_a_job_past_its_deadline_is_trusted_over_a_pod_that_succeeded():
    reconciler, api, store, job = _chain()
    _update_job(store, job, {"active": 1, "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}, "3")
    store.put_pod(KEY, step_pod(job, SUCCEEDED_POD))
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["reason"]) == ("Running", "DeadlineExceeded")
    _update_job(store, job, TIMED_OUT, "4")
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Failed"
    assert api.created == ["wf-1-a"]


def test_a_deadline_that_passes_after_the_pod_succeeded_leaves_the_step_succeeded():
    """The race the Job controller's batching opens: the pod exits 0, unstopped, then the
    deadline passes before the Job controller counts the success. The Job says
    DeadlineExceeded; the step, whose command finished in time, stays Succeeded."""
    reconciler, api, store, job = _chain()
    store.put_pod(KEY, step_pod(job, SUCCEEDED_POD))
    reconciler.reconcile(KEY)
    _update_job(store, job, TIMED_OUT, "3")
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Succeeded"
    assert api.workflow["status"]["steps"]["b"]["phase"] == "Running"


def test_a_retried_step_ends_with_its_last_pod_and_counts_both_attempts():
    reconciler, api, store, job = _chain()
    first = step_pod(job, FAILED_POD)
    store.put_pod(KEY, first)
    second = step_pod(job, SUCCEEDED_POD)
    second["metadata"].update(name=first["metadata"]["name"] + "2", creationTimestamp="2027-01-15T08:00:05Z")
    assert store.put_pod(KEY, second)
    reconciler.reconcile(KEY)
    entry = api.workflow["status"]["steps"]["a"]
    assert (entry["phase"], entry["attempts"]) == ("Succeeded", 2)


def test_a_succeeded_pod_of_an_earlier_job_of_the_same_name_ends_nothing():
    reconciler, api, store, job = _chain()
    store.put_pod(KEY, step_pod(job, SUCCEEDED_POD, uid="job-old"))
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Running"


def test_the_outputs_of_a_step_ended_by_its_pod_come_from_that_pod():
    reads = {"name": "T", "valueFrom": {"stepOutput": {"step": "build", "output": "tag"}}}
    reconciler, api, store = setup([{"name": "build", "script": "true", "outputs": ["tag"]},
                                    {"name": "use", "script": "true", "env": [reads]}])
    reconciler.reconcile(KEY)
    pod = copy.deepcopy(SUCCEEDED_POD)
    pod["containerStatuses"][0]["state"]["terminated"]["message"] = "tag=v1.2.3\n"
    store.put_pod(KEY, step_pod(api.jobs["wf-1-build"], pod))
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["build"]["outputs"] == {"tag": "v1.2.3"}
    env = api.jobs["wf-1-use"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "T", "value": "v1.2.3"} in env and api.pod_lists == 0


def test_a_job_of_more_than_one_pod_is_not_ended_by_one_pod():
    """stepflow builds no such Job; one adopted by name must not end on its first pod."""
    reconciler, api, store, job = _chain()
    wide = copy.deepcopy(job)
    wide["spec"].update(completions=3, parallelism=3)
    wide["metadata"]["resourceVersion"] = "3"
    store.put_job(KEY, wide)
    store.put_pod(KEY, step_pod(job, SUCCEEDED_POD))
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Running"


def test_a_new_run_keeps_the_job_of_a_step_its_pod_ended_before_the_job_controller_did():
    """A rerun right after the end: the old run's Job may not say Complete yet. It is over, not
    stale: deleting it would lose the old run's record."""
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    reconciler.reconcile(KEY)
    store.put_pod(KEY, step_pod(api.jobs["wf-1-a"], SUCCEEDED_POD))
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["phase"] == "Succeeded"
    again = copy.deepcopy(api.workflow)
    again["spec"]["runToken"] = "rerun-1"
    again["metadata"].update(generation=2, resourceVersion=str(int(again["metadata"]["resourceVersion"]) + 1))
    store.put_workflow(again)
    api.workflow = again
    reconciler.reconcile(KEY)
    assert sorted(api.jobs) == ["wf-1-a", "wf-2-a"]


def test_a_step_made_ready_by_a_skip_starts_without_waiting_for_another_event():
    """MatrixEmpty skips the fan-out step as its producer ends with its pod; the step after it
    is ready then. No later event is due (the producer's Job's Complete wakes nobody), so the
    reconcile asks to run again at once."""
    reconciler, api, store = setup([
        {"name": "list", "script": "true", "outputs": ["items"]},
        {"name": "each", "script": "true",
         "matrix": {"item": {"fromOutput": {"step": "list", "output": "items"}}}},
        {"name": "after", "script": "true", "dependsOn": ["each"]}])
    reconciler.reconcile(KEY)
    pod = copy.deepcopy(SUCCEEDED_POD)
    pod["containerStatuses"][0]["state"]["terminated"]["message"] = "items=[]\n"
    store.put_pod(KEY, step_pod(api.jobs["wf-1-list"], pod))
    requeue = reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["each"]["reason"] == "MatrixEmpty"
    assert requeue == 0.0
    reconciler.reconcile(KEY)
    assert "wf-1-after" in api.jobs
