"""Injected API errors, lost and late status writes, dropped watches: the run still completes,
once, with correct status. The operator reaches the real API server through the fault proxy
(tests/kube/faultproxy.py), for what a healthy API server will not do on demand. (A plain
operator crash is proven without it, in test_e2e_lifecycle.py.)"""

from __future__ import annotations

import time
from typing import Any

from kube.faultproxy import FaultProxy
from kube.realcluster import Kube, step, wait_for, workflow
from stepflow.status import parse_time

STEPS = [step("a", parallel=True), step("b", parallel=True), step("c"), step("d", parallel=True),
         step("e", parallel=True)]


def assert_one_job_per_step(kube: Kube, proxy: FaultProxy, name: str,
                            steps: list[dict[str, Any]] = STEPS) -> None:
    assert sorted(j["metadata"]["name"] for j in kube.jobs(name)) == sorted(
        f"{name}-1-{s['name']}" for s in steps)
    assert proxy.count("create jobs", status=201) == len(steps)


def complete(job: dict[str, Any]) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or ())


def test_restart_between_job_create_and_status_write_adopts_the_job(kube, fault_proxy, start_proxied):
    # Every status write fails, so the first operator creates Jobs but never records them.
    fault_proxy.fail(500, "patch workflows/status", times=None)
    first = start_proxied()
    kube.create(workflow("orphans", STEPS[:2]))
    # The Jobs finish while nothing is recorded.
    wait_for(lambda: len([j for j in kube.jobs("orphans") if complete(j)]) == 2)
    first.kill()
    fault_proxy.clear()
    start_proxied()
    status = kube.wait_phase("orphans")
    assert status["phase"] == "Succeeded"
    assert_one_job_per_step(kube, fault_proxy, "orphans", STEPS[:2])
    # The run is dated from the Jobs it adopted, not from when the second operator got to it.
    run_start = parse_time(status["startedAt"])
    assert all(parse_time(s["startedAt"]) >= run_start for s in status["steps"].values())
    assert run_start < parse_time(status["steps"]["a"]["finishedAt"])
    assert status["finishedAt"] == max(s["finishedAt"] for s in status["steps"].values())


def test_conflicts_throttling_and_server_errors_are_retried(kube, fault_proxy, start_proxied):
    start_proxied()
    fault_proxy.fail(409, "create jobs", times=2)
    fault_proxy.fail(500, "patch workflows/status", times=3)
    fault_proxy.fail(429, "create jobs", times=3, retry_after=0.2)
    fault_proxy.fail(503, "list pods", times=2)
    kube.create(workflow("bumpy", STEPS))
    status = kube.wait_phase("bumpy")
    assert status["phase"] == "Succeeded", status["message"]
    assert status["progress"] == "5/5"
    assert_one_job_per_step(kube, fault_proxy, "bumpy")
    faulted = [c for c in fault_proxy.calls if c.fault]
    assert {c.status for c in faulted} >= {409, 429, 500}


def test_a_dropped_watch_is_resumed_and_the_run_completes(kube, fault_proxy, start_proxied):
    start_proxied()
    steps = [s if s["name"] != "c" else step("c", duration="1s") for s in STEPS]
    kube.create(workflow("dropped", steps))
    wait_for(lambda: kube.get("jobs", "dropped-1-c"))
    assert fault_proxy.cut_watches(abrupt=True) >= 2
    status = kube.wait_phase("dropped")
    assert status["phase"] == "Succeeded"
    assert_one_job_per_step(kube, fault_proxy, "dropped")


def test_failed_step_details_survive_pod_list_errors(kube, fault_proxy, start_proxied):
    start_proxied()
    fault_proxy.fail(500, "list pods", times=2)
    kube.create(workflow("details", [step("a", duration="100ms", exit_code=7, message="boom")]))
    status = kube.wait_phase("details")
    assert status["steps"]["a"]["exitCode"] == 7
    assert status["steps"]["a"]["terminationMessage"] == "boom"
    assert kube.status("details")["phase"] == "Failed"


def test_a_job_the_api_server_refuses_fails_its_step_without_retrying(kube, fault_proxy, start_proxied):
    start_proxied()
    fault_proxy.fail(422, "create jobs", times=None,
                     message='Job.batch "x" is invalid: spec.template: quota exceeded')
    kube.create(workflow("refused", [step("a"), step("b")]))
    status = kube.wait_phase("refused")
    assert status["steps"]["a"]["phase"] == "Failed"
    assert status["steps"]["a"]["reason"] == "InvalidJob"
    assert "quota exceeded" in status["steps"]["a"]["message"]
    assert status["steps"]["b"]["phase"] == "Skipped"
    time.sleep(0.5)
    assert fault_proxy.count("create jobs") == 1  # no retry storm


def test_a_spec_change_that_slips_past_the_crd_mid_run_replaces_the_run(kube, fault_proxy, start_proxied):
    """The CRD refuses a spec change while a run is in progress, judging by the stored status.
    The operator records a run just after creating its first Job; a change that lands in
    between is accepted, and the operator must replace the run it then records."""
    start_proxied()
    fault_proxy.delay(3, "patch workflows/status", times=1)  # the first status write is late
    kube.create(workflow("swap", [step("old", hold=True)]))
    wait_for(lambda: kube.get("jobs", "swap-1-old"))
    kube.patch("workflows", "swap", {"spec": {"steps": [step("new")]}})
    status = kube.wait_phase("swap")
    assert status["phase"] == "Succeeded" and status["runGeneration"] == 2
    assert list(status["steps"]) == ["new"]
    wait_for(lambda: kube.get("jobs", "swap-1-old") is None)  # the old run's Job stopped
    wait_for(lambda: any(e["reason"] == "RunReplaced" for e in kube.events()))
