"""The apply stage: Jobs created, adopted after a restart, refused, or not ours."""

from __future__ import annotations

from scripted_api import KEY, NOW, existing_job, setup
from stepflow.operator.reconcile import NAME_TAKEN_RETRY
from stepflow.status import parse_time


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


def test_a_finally_step_reads_the_default_of_an_output_its_failed_producer_never_wrote():
    """O3 with a default, in the Job: build failed, so notify is not skipped OutputUnavailable;
    its Job carries the default as the variable's value."""
    reads = {"name": "IMAGE_TAG", "valueFrom": {"stepOutput": {"step": "build", "output": "tag",
                                                               "default": "none"}}}
    reconciler, api, _ = setup([{"name": "build", "script": "true", "outputs": ["tag"]}],
                               **{"finally": [{"name": "notify", "script": "true", "env": [reads]}]})
    job = existing_job(api.workflow, "build", owner_uid="uid-new", started=NOW - 30, outcome="Failed")
    api.jobs[job["metadata"]["name"]] = job
    reconciler.reconcile(KEY)
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["notify"]["phase"] == "Running"
    notify = next(j for j in api.jobs.values() if j["metadata"]["labels"]["stepflow.dev/step"] == "notify")
    env = {e["name"]: e for e in notify["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IMAGE_TAG"] == {"name": "IMAGE_TAG", "value": "none"}
