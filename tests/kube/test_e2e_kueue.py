"""Kueue mode (R3) on the real control plane: first with the test acting as Kueue (Jobs are
created suspended with the queue label, and a step runs only once its Job is un-suspended),
then against Kueue's own controller, built from the module proxy, with a ClusterQueue that
limits CPU."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
import yaml

from kube.build import ensure_kueue
from kube.kueue import Kueue
from kube.realcluster import step, wait_for, workflow
from stepflow.status import parse_time

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


# --- against Kueue itself --------------------------------------------------------------------

KUEUE_API = "kueue.x-k8s.io/v1beta2"


@pytest.fixture(scope="module")
def kueue(control_plane) -> Iterator[Kueue]:
    controller = Kueue(control_plane, ensure_kueue()).start()
    yield controller
    controller.stop()


def queues(kube, cpu: str) -> list[dict]:
    """A ClusterQueue with ``cpu`` of quota, and the namespace's LocalQueue team-a on it."""
    cluster_queue = f"cq-{kube.namespace}"
    return [
        {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": "default-flavor"}},
        {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": cluster_queue},
         "spec": {"namespaceSelector": {}, "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [
             {"name": "default-flavor", "resources": [{"name": "cpu", "nominalQuota": cpu}]}]}]}},
        {"apiVersion": KUEUE_API, "kind": "LocalQueue",
         "metadata": {"name": "team-a", "namespace": kube.namespace},
         "spec": {"clusterQueue": cluster_queue}},
    ]


def test_kueue_admits_the_steps_one_at_a_time_under_a_one_cpu_cluster_queue(kube, operator, kueue):
    kube.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in queues(kube, "1")))
    steps = [step(f"s{i}", "1s", parallel=True) for i in range(3)]
    kube.create(workflow("admitted", steps, queueName="team-a",
                         defaults={"image": "alpine:3.20", "resources": {"requests": {"cpu": "1"}}}))
    wait_for(lambda: len(kube.jobs("admitted")) == 3, message="stepflow did not queue every step")
    # Kueue admits one; the other two wait, shown as such.
    wait_for(lambda: sum(1 for e in kube.status("admitted").get("steps", {}).values()
                         if e.get("reason") == "WaitingForAdmission") == 2, timeout=60,
             message=f"not two steps waiting for admission:\n{kueue.log()[-2000:]}")
    status = kube.wait_phase("admitted", timeout=120)
    assert status["phase"] == "Succeeded", status.get("message")
    runs = sorted((parse_time(j["status"]["startTime"]), parse_time(j["status"]["completionTime"]))
                  for j in kube.finished_jobs("admitted"))
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(runs)), runs
    workloads = kube.plane.kubectl("get", "workloads", f"--namespace={kube.namespace}", "--no-headers")
    assert len(workloads.splitlines()) == 3  # one Kueue Workload per step: per-step admission
    assert kueue.alive()
