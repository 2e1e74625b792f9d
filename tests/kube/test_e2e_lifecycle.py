"""Time, runs, deletion, restarts and bad input on the real control plane."""

from __future__ import annotations

import itertools
import json
import time

from kube.realcluster import step, wait_for, workflow
from stepflow.status import parse_time


def test_a_step_ends_with_its_pod_not_a_second_later_with_its_job(kube, operator):
    """The Job controller marks a Job Complete about a second after its pod ended; a chain
    whose every step waited for that would take at least 6 s here. The step ends when its pod
    succeeds (docs/architecture.md), and each Job still becomes Complete: it stays the record."""
    names = [f"s{i}" for i in range(6)]
    kube.create(workflow("quick", [step(n, duration=None, dependsOn=[names[i - 1]] if i else [])
                                   for i, n in enumerate(names)]))
    status = kube.wait_phase("quick", timeout=60)
    assert status["phase"] == "Succeeded"
    took = parse_time(status["finishedAt"]) - parse_time(status["startedAt"])
    assert took < 3.0, f"6 zero-duration steps took {took:.2f} s"
    steps = [status["steps"][n] for n in names]
    for before, after in itertools.pairwise(steps):
        assert parse_time(before["finishedAt"]) <= parse_time(after["startedAt"])
    wait_for(lambda: all(any(c["type"] == "Complete" for c in
                             (kube.get("jobs", f"quick-1-{n}") or {}).get("status", {}).get("conditions", []))
                         for n in names), timeout=30)


def test_a_step_timeout_is_the_jobs_active_deadline(kube, operator):
    kube.create(workflow("deadline", [step("stuck", hold=True, timeoutSeconds=2), step("never")]))
    status = kube.wait_phase("deadline", timeout=60)
    assert status["steps"]["stuck"]["phase"] == "Failed"
    assert status["steps"]["stuck"]["reason"] == "DeadlineExceeded"  # from the real Job controller
    assert status["steps"]["never"]["phase"] == "Skipped"
    job = kube.get("jobs", "deadline-1-stuck")
    assert job["spec"]["activeDeadlineSeconds"] == 2


def test_the_workflow_timeout_cancels_like_fail_fast_with_reason_timeout(kube, operator):
    doc = workflow("slowpoke", [step("forever", hold=True), step("never")], timeoutSeconds=2)
    # W2, X1: in a finally step workflow.failed is the main steps' outcome, a Timeout included.
    doc["spec"]["finally"] = [step("alert", parallel=True, when="workflow.failed"),
                              step("celebrate", parallel=True, when="!workflow.failed")]
    kube.create(doc)
    status = kube.wait_phase("slowpoke", timeout=60)
    assert status["phase"] == "Failed" and status["reason"] == "Timeout"
    assert status["steps"]["forever"]["phase"] == "Cancelled"
    assert status["steps"]["forever"]["reason"] == "Timeout"
    assert status["steps"]["never"]["phase"] == "Skipped"
    assert status["steps"]["alert"]["phase"] == "Succeeded"
    assert (status["steps"]["celebrate"]["phase"], status["steps"]["celebrate"]["reason"]) == (
        "Skipped", "ConditionFalse")
    wait_for(lambda: kube.get("jobs", "slowpoke-1-forever") is None)


def test_retries_go_through_the_real_job_controllers_back_off(kube, operator):
    kube.create(workflow("retry", [step("flaky", exit_code=1, retries=1)]))
    status = kube.wait_phase("retry", timeout=90)
    entry = status["steps"]["flaky"]
    assert entry["phase"] == "Failed" and entry["reason"] == "BackoffLimitExceeded"
    assert entry["attempts"] == 2  # it read 1: the last pod was still uncounted
    pods = kube.pods("retry-1-flaky")
    assert len(pods) == 2  # one pod per attempt
    created = sorted(parse_time(p["metadata"]["creationTimestamp"]) for p in pods)
    assert created[1] - created[0] >= 5  # the Job controller waits ~10 s before a retry
    # `stepflow logs` of a retried step shows its last attempt (mirror: cli/cluster.py), checked
    # here, where the retry's back-off is paid for anyway.
    for attempt, pod in enumerate(sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"]), 1):
        kube.set_pod_log(pod["metadata"]["name"], f"attempt {attempt}\n")
    assert kube.stepflow("logs", "retry", "flaky") == "attempt 2\n"


def test_a_step_timeout_covers_its_retries_and_their_back_off(kube, operator):
    """timeoutSeconds bounds the whole step: 3 retries need 10 s + 20 s + 40 s of back-off, so
    within 15 s the step gets its first retry only, and fails on its deadline."""
    kube.create(workflow("budget", [step("flaky", exit_code=1, retries=3, timeoutSeconds=15)]))
    status = kube.wait_phase("budget", timeout=90)
    entry = status["steps"]["flaky"]
    assert (entry["phase"], entry["reason"]) == ("Failed", "DeadlineExceeded")
    assert entry["attempts"] == 2
    took = parse_time(entry["finishedAt"]) - parse_time(entry["startedAt"])
    assert 14 <= took < 30, took
    assert entry["exitCode"] == 1  # the last attempt's, not the deadline's


def test_suspend_starts_nothing_and_resume_carries_on(kube, operator):
    kube.create(workflow("paused", [step("a"), step("b")], suspend=True))
    status = kube.wait_phase("paused", ["Suspended"])
    assert status["steps"]["a"]["reason"] == "Suspended"
    time.sleep(1)
    assert kube.jobs("paused") == []
    kube.patch("workflows", "paused", {"spec": {"suspend": False}})
    status = kube.wait_phase("paused")
    assert status["phase"] == "Succeeded" and status["runGeneration"] == 1
    assert status["observedGeneration"] == 2


def test_suspend_mid_run_lets_the_running_step_finish_and_starts_nothing_new(kube, operator):
    kube.create(workflow("mid", [step("a", hold=True), step("b")]))
    wait_for(lambda: kube.step_phase("mid", "a") == "Running")
    kube.patch("workflows", "mid", {"spec": {"suspend": True}})
    kube.wait_phase("mid", ["Suspended"])
    kube.release("mid-1-a")
    wait_for(lambda: kube.step_phase("mid", "a") == "Succeeded")
    time.sleep(1)
    assert kube.get("jobs", "mid-1-b") is None and kube.status("mid")["phase"] == "Suspended"
    kube.patch("workflows", "mid", {"spec": {"suspend": False}})
    assert kube.wait_phase("mid")["phase"] == "Succeeded"


def test_a_changed_spec_after_the_end_starts_a_new_run(kube, operator):
    kube.create(workflow("again", [step("a")]))
    assert kube.wait_phase("again")["phase"] == "Succeeded"
    kube.patch("workflows", "again", {"spec": {"maxConcurrency": 3}})
    time.sleep(1)
    assert kube.status("again")["runGeneration"] == 1 and len(kube.jobs("again")) == 1
    kube.patch("workflows", "again", {"spec": {"steps": [step("a"), step("b")]}})
    wait_for(lambda: kube.status("again").get("runGeneration") == 3)
    status = kube.wait_phase("again")
    assert status["phase"] == "Succeeded" and status["progress"] == "2/2"
    assert sorted(j["metadata"]["name"] for j in kube.jobs("again")) == [
        "again-1-a",
        "again-3-a",
        "again-3-b",
    ]


def test_rerun_and_rerun_failed(kube, operator):
    kube.create(
        workflow(
            "rr", [step("ok"), step("bad", exit_code=1, continueOnError=False)], failurePolicy="Continue"
        )
    )
    kube.wait_phase("rr")
    kube.stepflow("rerun", "rr", "--failed")
    wait_for(lambda: kube.status("rr").get("runGeneration", 1) > 1)
    status = kube.wait_phase("rr")
    assert status["steps"]["ok"]["message"] == "kept from the previous run"
    assert status["steps"]["bad"]["jobName"].startswith(f"rr-{status['runGeneration']}-")
    before = status["runGeneration"]
    kube.stepflow("rerun", "rr")
    wait_for(lambda: kube.status("rr").get("runGeneration") > before)
    status = kube.wait_phase("rr")
    assert status["steps"]["ok"]["jobName"].startswith(f"rr-{status['runGeneration']}-")


def test_deleting_a_workflow_deletes_its_jobs_and_pods_through_the_garbage_collector(kube, operator):
    kube.create(
        workflow("doomed", [step("long", hold=True, parallel=True), step("other", hold=True, parallel=True)])
    )
    wait_for(lambda: len(kube.objects("pods", labels={"stepflow.dev/workflow": "doomed"})) == 2)
    kube.kubectl("delete", "workflow", "doomed", "--wait=true")
    wait_for(lambda: not kube.jobs("doomed"), message="the Jobs outlived their Workflow")
    wait_for(
        lambda: not kube.objects("pods", labels={"stepflow.dev/workflow": "doomed"}),
        message="the pods outlived their Workflow",
    )


def test_a_job_deleted_by_hand_fails_its_step_with_a_clear_message(kube, operator):
    kube.create(workflow("manual", [step("victim", hold=True), step("after")]))
    wait_for(lambda: kube.step_phase("manual", "victim") == "Running")
    kube.delete("jobs", "manual-1-victim")
    status = kube.wait_phase("manual")
    assert status["steps"]["victim"]["reason"] == "JobDeleted"
    assert "manual-1-victim" in status["steps"]["victim"]["message"]
    assert status["steps"]["after"]["phase"] == "Skipped"


def test_killing_the_operator_mid_run_loses_nothing_and_duplicates_nothing(kube, start_operator):
    steps = [
        step("a", parallel=True),
        step("b", parallel=True),
        step("c", hold=True),
        step("d", parallel=True),
        step("e", parallel=True),
    ]
    first = start_operator()
    kube.create(workflow("crashy", steps))
    wait_for(lambda: kube.step_phase("crashy", "c") == "Running")
    first.kill()
    kube.release("crashy-1-c")  # "c" finishes while nobody is watching
    wait_for(lambda: kube.get("jobs", "crashy-1-c")["status"].get("succeeded"))
    start_operator()
    status = kube.wait_phase("crashy")
    assert status["phase"] == "Succeeded", status["message"]
    assert sorted(j["metadata"]["name"] for j in kube.jobs("crashy")) == [f"crashy-1-{n}" for n in "abcde"]
    assert all(len(kube.pods(f"crashy-1-{n}")) == 1 for n in "abcde")


def test_an_invalid_spec_fails_once_with_every_error(kube, operator):
    steps = [step("a", dependsOn=["missing"]), step("b", dependsOn=["c"]), step("c", dependsOn=["b"])]
    broken = workflow("broken", steps)
    broken["spec"]["finally"] = [step("cleanup")]  # X1: not run for an InvalidSpec workflow
    kube.create(broken)
    status = kube.wait_phase("broken")
    assert status["phase"] == "Failed" and status["reason"] == "InvalidSpec"
    assert any('unknown step "missing"' in e for e in status["errors"])
    version = kube.get("workflows", "broken")["metadata"]["resourceVersion"]
    time.sleep(1.5)
    assert kube.get("workflows", "broken")["metadata"]["resourceVersion"] == version  # no retry storm
    assert kube.jobs("broken") == []
    wait_for(lambda: any(e["reason"] == "InvalidSpec" for e in kube.events("broken")))


def test_a_workflow_recreated_under_the_same_name_never_takes_over_the_old_ones_jobs(kube, operator):
    kube.create(workflow("twice", [step("a")]))
    assert kube.wait_phase("twice")["phase"] == "Succeeded"
    kube.delete("workflows", "twice", propagation="Orphan")
    wait_for(lambda: kube.get("workflows", "twice") is None)
    kube.create(workflow("twice", [step("a")]))
    wait_for(lambda: (kube.status("twice").get("steps") or {}).get("a", {}).get("reason") == "JobNameTaken")
    assert kube.status("twice")["phase"] not in ("Succeeded", "Failed")
    kube.delete("jobs", "twice-1-a")
    assert kube.wait_phase("twice")["phase"] == "Succeeded"
    uid = kube.get("workflows", "twice")["metadata"]["uid"]
    [job] = kube.jobs("twice")
    assert [ref["uid"] for ref in job["metadata"]["ownerReferences"]] == [uid]


def test_reordering_env_or_depends_on_mid_run_is_no_change(kube, operator):
    """The CRD's CEL compares map lists and sets without order, so it lets these through; the
    run carries on instead of being replaced."""
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    first = workflow("steady", [step("x"), step("y"), step("hold", hold=True, env=env, dependsOn=["x", "y"])])
    kube.kubectl("apply", "-f", "-", input=json.dumps(first))
    wait_for(lambda: kube.step_phase("steady", "hold") == "Running")
    second = workflow(
        "steady", [step("x"), step("y"), step("hold", hold=True, env=env[::-1], dependsOn=["y", "x"])]
    )
    kube.kubectl("apply", "-f", "-", input=json.dumps(second))  # admitted: no change to CEL
    assert kube.get("workflows", "steady")["metadata"]["generation"] == 2
    time.sleep(1.5)
    status = kube.status("steady")
    assert status["runGeneration"] == 1 and status["steps"]["hold"]["phase"] == "Running"
    assert kube.get("jobs", "steady-1-hold") is not None  # not stopped by a replaced run
    kube.release("steady-1-hold")
    assert kube.wait_phase("steady")["phase"] == "Succeeded"
