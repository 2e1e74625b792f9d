"""Injected API errors, lost status writes and dropped watches: the run still completes, once,
with correct status. (A plain operator crash is proven on the real control plane,
tests/kube/test_e2e_lifecycle.py.)"""

from __future__ import annotations

import time

import pytest

from cluster.jobs import Outcome
from operator_harness import job_runs, status_of, wait_phase, workflow
from stepflow.status import parse_time

pytestmark = pytest.mark.cluster(time_scale=0.5)


def step(name, **fields):
    return {"name": name, "script": f"echo {name}; sleep 0.3", **fields}


STEPS = [step("a", parallel=True), step("b", parallel=True), step("c"), step("d", parallel=True),
         step("e", parallel=True)]


def assert_one_job_per_step(cluster, name, steps=STEPS):
    assert sorted(j["metadata"]["name"] for j in cluster.objects("jobs")) == sorted(
        f"{name}-1-{s['name']}" for s in steps)
    assert cluster.requests.count(verb="create", resource="jobs", status=201) == len(steps)


def test_restart_between_job_create_and_status_write_adopts_the_job(cluster, start_operator):
    # Every status write fails, so the first operator creates Jobs but never records them.
    cluster.faults.fail(500, times=None, verb="patch", resource="workflows", subresource="status")
    first = start_operator()
    cluster.create(workflow("orphans", STEPS[:2]))
    cluster.wait_for(lambda: len(cluster.objects("jobs")) == 2, timeout=15)
    time.sleep(1.5)  # the Jobs finish while nothing is recorded
    first.kill()
    cluster.faults.clear()
    start_operator()
    status = wait_phase(cluster, "orphans")
    assert status["phase"] == "Succeeded"
    assert_one_job_per_step(cluster, "orphans", STEPS[:2])
    # The run is dated from the Jobs it adopted, not from when the second operator got to it.
    run_start = parse_time(status["startedAt"])
    assert all(parse_time(s["startedAt"]) >= run_start for s in status["steps"].values())
    assert run_start < parse_time(status["steps"]["a"]["finishedAt"])
    assert status["finishedAt"] == max(s["finishedAt"] for s in status["steps"].values())


def test_conflicts_throttling_and_server_errors_are_retried(cluster, operator):
    cluster.faults.fail(409, times=2, verb="create", resource="jobs")
    cluster.faults.fail(500, times=3, verb="patch", resource="workflows", subresource="status")
    cluster.faults.fail(429, times=3, verb="create", resource="jobs", retry_after=0.2)
    cluster.faults.fail(503, times=2, verb="list", resource="pods")
    cluster.create(workflow("bumpy", STEPS))
    status = wait_phase(cluster, "bumpy")
    assert status["phase"] == "Succeeded", status["message"]
    assert status["progress"] == "5/5"
    assert_one_job_per_step(cluster, "bumpy")
    faulted = [r for r in cluster.requests if r.fault]
    assert {r.status for r in faulted} >= {409, 429, 500}


def test_a_dropped_watch_is_resumed_and_the_run_completes(cluster, operator):
    cluster.jobs.when(Outcome(duration=0.6), step="c")
    cluster.create(workflow("dropped", STEPS))
    cluster.wait_for(lambda: "c" in job_runs(cluster, "dropped"), timeout=15)
    assert cluster.drop_watches(abrupt=True) >= 2
    status = wait_phase(cluster, "dropped", timeout=30)
    assert status["phase"] == "Succeeded"
    assert_one_job_per_step(cluster, "dropped")


def test_failed_step_details_survive_pod_list_errors(cluster, operator):
    cluster.jobs.when(Outcome(duration=0.1, exit_code=7, message="boom"), step="a")
    cluster.faults.fail(500, times=2, verb="list", resource="pods")
    cluster.create(workflow("details", [step("a")]))
    status = wait_phase(cluster, "details")
    assert status["steps"]["a"]["exitCode"] == 7
    assert status["steps"]["a"]["terminationMessage"] == "boom"
    assert status_of(cluster, "details")["phase"] == "Failed"


def test_a_job_the_api_server_refuses_fails_its_step_without_retrying(cluster, operator):
    cluster.faults.fail(422, times=None, verb="create", resource="jobs",
                        message='Job.batch "x" is invalid: spec.template: quota exceeded')
    cluster.create(workflow("refused", [step("a"), step("b")]))
    status = wait_phase(cluster, "refused")
    assert status["steps"]["a"]["phase"] == "Failed"
    assert status["steps"]["a"]["reason"] == "InvalidJob"
    assert "quota exceeded" in status["steps"]["a"]["message"]
    assert status["steps"]["b"]["phase"] == "Skipped"
    time.sleep(0.5)
    assert cluster.requests.count(verb="create", resource="jobs") == 1  # no retry storm
