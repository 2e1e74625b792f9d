"""Caps and failure policies, end to end: what a user sees in status and in the Jobs."""

from __future__ import annotations

import pytest

from cluster.jobs import Outcome
from operator_harness import job_runs, max_overlap, wait_phase, workflow


def step(name, **fields):
    return {"name": name, "script": f"echo {name}; sleep 0.3", **fields}


@pytest.mark.cluster(time_scale=0.5)
def test_max_concurrency_caps_running_jobs_and_shows_waiting_for_slot(cluster, operator):
    waiting: set[str] = set()  # every published status, not what a poll happens to catch

    def record_waiting(event):
        steps = (event.obj.get("status") or {}).get("steps") or {}
        waiting.update(n for n, e in steps.items() if e.get("reason") == "WaitingForSlot")

    cluster.store.subscribe(record_waiting)
    cluster.create(workflow("capped", [step(f"s{i}", parallel=True) for i in range(6)], maxConcurrency=2))
    status = wait_phase(cluster, "capped")
    assert waiting == {"s2", "s3", "s4", "s5"}  # visible to `kubectl get -o yaml` while they wait
    assert status["phase"] == "Succeeded"
    runs = job_runs(cluster, "capped").values()
    assert max_overlap((r.started, r.finished) for r in runs) == 2
    starts = [job_runs(cluster, "capped")[f"s{i}"].started for i in range(6)]
    assert starts == sorted(starts)  # waiting steps get slots in document order


@pytest.mark.cluster(time_scale=0.5)
def test_operator_wide_cap_is_shared_first_come_first_served(cluster, start_operator):
    start_operator("--max-running-jobs", "2")
    cluster.create(workflow("first", [step(f"a{i}", parallel=True) for i in range(3)]))
    cluster.wait_for(lambda: job_runs(cluster, "first"))
    cluster.create(workflow("second", [step(f"b{i}", parallel=True) for i in range(3)]))
    cluster.create(workflow("third", [step(f"c{i}", parallel=True) for i in range(3)]))
    for name in ("first", "second", "third"):
        assert wait_phase(cluster, name)["phase"] == "Succeeded"
    runs = [r for r in cluster.jobs.runs]
    assert len(runs) == 9
    assert max_overlap((r.started, r.finished) for r in runs) == 2
    last_of_first = max(r.started for r in job_runs(cluster, "first").values())
    first_of_third = min(r.started for r in job_runs(cluster, "third").values())
    assert last_of_first < first_of_third  # the earlier workflow was not starved


@pytest.mark.cluster(time_scale=0.5)
def test_stop_after_group_finishes_the_group_then_skips_the_rest(cluster, operator):
    cluster.jobs.when(Outcome(duration=0.2, exit_code=3, message="tests failed: 2 of 40"), step="a")
    cluster.jobs.when(Outcome(duration=0.2, exit_code=1, message="lint failed"), step="b")
    steps = [step("a", parallel=True), step("b", parallel=True), step("c", parallel=True),
             step("d"), step("e", dependsOn=["d"])]
    cluster.create(workflow("f1", steps, maxConcurrency=2))
    status = wait_phase(cluster, "f1")
    phases = {n: e["phase"] for n, e in status["steps"].items()}
    assert phases == {"a": "Failed", "b": "Failed", "c": "Succeeded", "d": "Skipped", "e": "Skipped"}
    assert status["phase"] == "Failed"
    assert '"a"' in status["message"] and '"b"' in status["message"]  # every failed step named
    assert status["steps"]["a"]["exitCode"] == 3
    assert status["steps"]["a"]["terminationMessage"] == "tests failed: 2 of 40"
    assert "c" in job_runs(cluster, "f1") and "d" not in job_runs(cluster, "f1")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Stalled"] == "True" and conditions["Failed"] == "True"
    assert conditions["Ready"] == "False"


@pytest.mark.cluster(time_scale=0.5)
def test_fail_fast_stops_running_jobs_and_cancels_their_steps(cluster, operator):
    cluster.jobs.when(Outcome(duration=0.1, exit_code=2), step="quick-fail")
    cluster.jobs.when(Outcome(duration=30), step="slow")
    steps = [step("quick-fail", parallel=True), step("slow", parallel=True), step("after")]
    cluster.create(workflow("ff", steps, failurePolicy="FailFast"))
    status = wait_phase(cluster, "ff")
    phases = {n: e["phase"] for n, e in status["steps"].items()}
    assert phases == {"quick-fail": "Failed", "slow": "Cancelled", "after": "Skipped"}
    assert status["steps"]["slow"]["reason"] == "FailFast"
    cluster.wait_for(lambda: cluster.get("jobs", "ff-1-slow") is None)  # the Job is gone
    cluster.wait_for(lambda: not [p for p in cluster.objects("pods")
                                  if p["metadata"]["labels"].get("job-name") == "ff-1-slow"])


@pytest.mark.cluster(time_scale=0.5)
def test_continue_on_error_records_the_failure_but_succeeds(cluster, operator):
    cluster.jobs.when(Outcome(duration=0.1, exit_code=1), step="flaky")
    steps = [step("flaky", continueOnError=True), step("next")]
    cluster.create(workflow("coe", steps))
    status = wait_phase(cluster, "coe")
    assert status["phase"] == "Succeeded"
    assert status["steps"]["flaky"]["phase"] == "Failed"
    assert status["steps"]["flaky"]["continuedOnError"] is True
    assert status["steps"]["next"]["phase"] == "Succeeded"


@pytest.mark.cluster(time_scale=1.0)
def test_workflow_timeout_cancels_like_fail_fast_with_reason_timeout(cluster, operator):
    cluster.jobs.when(Outcome(duration=60), step="forever")
    cluster.create(workflow("slowpoke", [step("forever"), step("never")], timeoutSeconds=1))
    status = wait_phase(cluster, "slowpoke", timeout=20)
    assert status["phase"] == "Failed" and status["reason"] == "Timeout"
    assert status["steps"]["forever"]["phase"] == "Cancelled"
    assert status["steps"]["forever"]["reason"] == "Timeout"
    assert status["steps"]["never"]["phase"] == "Skipped"
    cluster.wait_for(lambda: cluster.get("jobs", "slowpoke-1-forever") is None)
