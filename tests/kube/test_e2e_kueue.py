"""Kueue mode (R3) on the real control plane, with the test acting as Kueue: Jobs are created
suspended with the queue label, and a step runs only once its Job is un-suspended."""

from __future__ import annotations

import time

from kube.realcluster import step, wait_for, workflow

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def admit(kube, job: str) -> None:
    """What Kueue does when a ClusterQueue has room: un-suspend the Job."""
    kube.patch("jobs", job, {"spec": {"suspend": False}})


def entry(kube, name: str, step_name: str) -> dict:
    return (kube.status(name).get("steps") or {}).get(step_name) or {}


def test_jobs_wait_suspended_with_the_queue_label_until_admitted(kube, operator):
    kube.create(workflow("queued", [step("a", "300ms", parallel=True), step("b", "300ms", parallel=True),
                                    step("c", "300ms")], queueName="team-a"))
    jobs = wait_for(lambda: len(kube.jobs("queued")) == 2 and kube.jobs("queued"), message="no Jobs")
    for job in jobs:
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"][QUEUE_LABEL] == "team-a"
        assert QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    wait_for(lambda: entry(kube, "queued", "a").get("reason") == "WaitingForAdmission",
             message="the step never showed WaitingForAdmission")
    assert entry(kube, "queued", "a")["phase"] == "Pending"
    assert "team-a" in entry(kube, "queued", "a")["message"]
    time.sleep(3)  # stepflow never admits a Job itself
    assert all(j["spec"]["suspend"] for j in kube.jobs("queued"))
    assert not kube.pods("queued-1-a")  # the Job controller makes no pod for a suspended Job
    assert entry(kube, "queued", "c").get("phase") == "Pending"
    admit(kube, "queued-1-a")
    wait_for(lambda: entry(kube, "queued", "a").get("phase") == "Succeeded", timeout=30,
             message="the admitted step never ran")
    assert entry(kube, "queued", "b")["reason"] == "WaitingForAdmission"  # still queued
    admit(kube, "queued-1-b")
    wait_for(lambda: kube.get("jobs", "queued-1-c") is not None, timeout=30, message="c never queued")
    assert kube.get("jobs", "queued-1-c")["spec"]["suspend"] is True
    admit(kube, "queued-1-c")
    status = kube.wait_phase("queued", timeout=60)
    assert status["phase"] == "Succeeded", status.get("message")


def test_a_job_waiting_for_admission_counts_against_max_concurrency(kube, operator):
    kube.create(workflow("capped", [step("a", "200ms", parallel=True), step("b", "200ms", parallel=True)],
                         queueName="team-a", maxConcurrency=1))
    wait_for(lambda: kube.get("jobs", "capped-1-a") is not None, message="no Job for a")
    time.sleep(2)
    assert kube.get("jobs", "capped-1-b") is None
    assert entry(kube, "capped", "b")["reason"] == "WaitingForSlot"
    admit(kube, "capped-1-a")
    wait_for(lambda: kube.get("jobs", "capped-1-b") is not None, timeout=30, message="b never queued")
    admit(kube, "capped-1-b")
    assert kube.wait_phase("capped", timeout=60)["phase"] == "Succeeded"


def test_fail_fast_and_the_timeout_stop_jobs_that_were_never_admitted(kube, operator):
    kube.create(workflow("fast", [step("boom", "200ms", parallel=True, exit_code=1),
                                  step("queued", "200ms", parallel=True)],
                         queueName="team-a", failurePolicy="FailFast"))
    kube.create(workflow("late", [step("never", "200ms")], queueName="team-a", timeoutSeconds=3))
    wait_for(lambda: kube.get("jobs", "fast-1-boom") is not None, message="no Job for boom")
    admit(kube, "fast-1-boom")
    status = kube.wait_phase("fast", timeout=60)
    assert status["phase"] == "Failed"
    assert status["steps"]["queued"]["phase"] == "Cancelled"
    wait_for(lambda: kube.get("jobs", "fast-1-queued") is None, message="the queued Job was not deleted")
    status = kube.wait_phase("late", timeout=60)
    assert status["phase"] == "Failed" and status["reason"] == "Timeout", status
    assert status["steps"]["never"]["phase"] == "Cancelled"
    wait_for(lambda: kube.get("jobs", "late-1-never") is None, message="the timed-out Job was not deleted")
