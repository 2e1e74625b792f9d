"""Runs, changes, suspension, invalid input and deletion, end to end."""

from __future__ import annotations

import time

import pytest

from cluster.crds import workflow_crd
from cluster.jobs import Outcome
from operator_harness import job_runs, status_of, wait_phase, workflow

pytestmark = pytest.mark.cluster(time_scale=0.5)


def step(name, **fields):
    return {"name": name, "script": f"echo {name}; sleep 0.2", **fields}


def test_suspend_starts_nothing_and_resume_carries_on(cluster, operator):
    cluster.create(workflow("paused", [step("a"), step("b")], suspend=True))
    status = wait_phase(cluster, "paused", ["Suspended"])
    assert status["steps"]["a"]["reason"] == "Suspended"
    time.sleep(0.5)
    assert cluster.objects("jobs") == []
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Reconciling"] == "True" and conditions["Ready"] == "False"

    cluster.patch("workflows", "paused", {"spec": {"suspend": False}})
    status = wait_phase(cluster, "paused")
    assert status["phase"] == "Succeeded"
    assert status["runGeneration"] == 1  # resuming is not a new run
    assert status["observedGeneration"] == 2


def test_suspend_mid_run_lets_running_steps_finish_and_starts_nothing_new(cluster, operator):
    cluster.jobs.when(Outcome(duration=None), step="a")  # runs until the test finishes it
    cluster.create(workflow("mid", [step("a"), step("b")]))
    cluster.wait_for(lambda: "a" in job_runs(cluster, "mid"))
    cluster.patch("workflows", "mid", {"spec": {"suspend": True}})
    wait_phase(cluster, "mid", ["Suspended"])
    cluster.jobs.finish("mid-1-a")
    cluster.wait_for(lambda: status_of(cluster, "mid").get("steps", {}).get("a", {}).get("phase")
                     == "Succeeded", timeout=10)
    time.sleep(0.5)
    assert "b" not in job_runs(cluster, "mid")
    assert status_of(cluster, "mid")["phase"] == "Suspended"


def test_a_changed_spec_after_the_end_starts_a_new_run(cluster, operator):
    cluster.create(workflow("again", [step("a")]))
    assert wait_phase(cluster, "again")["phase"] == "Succeeded"
    cluster.patch("workflows", "again", {"spec": {"suspend": False, "maxConcurrency": 3}})
    time.sleep(0.5)
    assert status_of(cluster, "again")["runGeneration"] == 1  # these two never start a run
    assert len(cluster.objects("jobs")) == 1

    cluster.patch("workflows", "again", {"spec": {"steps": [step("a"), step("b")]}})
    cluster.wait_for(lambda: status_of(cluster, "again").get("runGeneration") == 3)
    status = wait_phase(cluster, "again")
    assert status["phase"] == "Succeeded" and status["progress"] == "2/2"
    names = sorted(j["metadata"]["name"] for j in cluster.objects("jobs"))
    assert names == ["again-1-a", "again-3-a", "again-3-b"]


def test_observed_generation_never_reports_the_old_run_as_the_new_ones_result(cluster, operator):
    cluster.jobs.when(Outcome(duration=1.0), step="b")
    cluster.create(workflow("gen", [step("a")]))
    wait_phase(cluster, "gen")
    cluster.patch("workflows", "gen", {"spec": {"steps": [step("a"), step("b")]}})
    seen = []
    deadline = time.time() + 10
    while time.time() < deadline:
        status = status_of(cluster, "gen")
        seen.append((status.get("observedGeneration"), status.get("phase")))
        if status.get("phase") == "Succeeded" and status.get("runGeneration") == 2:
            break
        time.sleep(0.02)
    assert (2, "Succeeded") in seen
    first_new = seen.index(next(s for s in seen if s[0] == 2))
    assert all(phase != "Succeeded" for _, phase in seen[first_new:-1])  # no stale "done"


def test_an_invalid_spec_fails_once_with_every_error_and_no_retry_storm(cluster, operator):
    steps = [step("a", dependsOn=["missing"]), step("b", dependsOn=["c"]), step("c", dependsOn=["b"])]
    cluster.create(workflow("broken", steps))
    status = wait_phase(cluster, "broken")
    assert status["phase"] == "Failed" and status["reason"] == "InvalidSpec"
    assert any('unknown step "missing"' in e for e in status["errors"])
    patches = cluster.requests.count(verb="patch", resource="workflows")
    time.sleep(1.0)
    assert cluster.requests.count(verb="patch", resource="workflows") == patches
    assert cluster.objects("jobs") == []
    cluster.wait_for(lambda: any(e["reason"] == "InvalidSpec" for e in cluster.events()))


def test_deleting_a_workflow_deletes_its_jobs_and_pods(cluster, operator):
    cluster.jobs.when(Outcome(duration=30), step="long")
    cluster.create(workflow("doomed", [step("long", parallel=True), step("other", parallel=True)]))
    cluster.wait_for(lambda: len(cluster.objects("jobs")) == 2 and len(cluster.objects("pods")) == 2)
    cluster.delete("workflows", "doomed")
    cluster.wait_for(lambda: not cluster.objects("jobs") and not cluster.objects("pods"))


def test_a_job_deleted_by_hand_fails_its_step_with_a_clear_message(cluster, operator):
    cluster.jobs.when(Outcome(duration=30), step="victim")
    cluster.create(workflow("manual", [step("victim"), step("after")]))
    cluster.wait_for(lambda: cluster.get("jobs", "manual-1-victim"))
    cluster.wait_for(lambda: status_of(cluster, "manual").get("steps", {}).get("victim", {}).get("phase")
                     == "Running")
    cluster.delete("jobs", "manual-1-victim", propagation="Background")
    status = wait_phase(cluster, "manual")
    assert status["steps"]["victim"]["phase"] == "Failed"
    assert status["steps"]["victim"]["reason"] == "JobDeleted"
    assert "manual-1-victim" in status["steps"]["victim"]["message"]
    assert status["steps"]["after"]["phase"] == "Skipped"


def crd_without_cel(node=None):
    """The Workflow CRD as a cluster without CEL support would enforce it."""
    node = workflow_crd() if node is None else node
    if isinstance(node, dict):
        return {k: crd_without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [crd_without_cel(v) for v in node]
    return node


@pytest.mark.cluster(time_scale=0.5, crds=[crd_without_cel()])
def test_a_spec_change_that_slips_past_the_crd_mid_run_replaces_the_run(cluster, operator):
    cluster.jobs.when(Outcome(duration=30), step="old")
    cluster.create(workflow("swap", [step("old")]))
    cluster.wait_for(lambda: status_of(cluster, "swap").get("steps", {}).get("old", {}).get("phase")
                     == "Running")
    cluster.patch("workflows", "swap", {"spec": {"steps": [step("new")]}})
    status = wait_phase(cluster, "swap")
    assert status["phase"] == "Succeeded" and status["runGeneration"] == 2
    assert list(status["steps"]) == ["new"]
    cluster.wait_for(lambda: cluster.get("jobs", "swap-1-old") is None)  # the old run's Job stopped
    cluster.wait_for(lambda: any(e["reason"] == "RunReplaced" for e in cluster.events()))


def test_a_workflow_recreated_under_the_same_name_never_takes_over_the_old_ones_jobs(cluster, operator):
    cluster.create(workflow("twice", [step("a")]))
    assert wait_phase(cluster, "twice")["phase"] == "Succeeded"
    cluster.delete("workflows", "twice", propagation="Orphan")  # its Job stays behind
    cluster.wait_for(lambda: cluster.get("workflows", "twice") is None)
    cluster.create(workflow("twice", [step("a")]))  # generation 1 again: same Job name
    cluster.wait_for(lambda: status_of(cluster, "twice").get("steps", {}).get("a", {}).get("reason")
                     == "JobNameTaken", timeout=10)
    status = status_of(cluster, "twice")
    assert status["phase"] not in ("Succeeded", "Failed")  # the old Job's result is not this run's
    assert "still exists" in status["steps"]["a"]["message"]
    assert len(cluster.objects("jobs")) == 1  # the user's orphaned Job is left alone

    cluster.delete("jobs", "twice-1-a")
    assert wait_phase(cluster, "twice")["phase"] == "Succeeded"
    uid = cluster.get("workflows", "twice")["metadata"]["uid"]
    [job] = cluster.objects("jobs")
    assert [ref["uid"] for ref in job["metadata"]["ownerReferences"]] == [uid]
    assert len([r for r in cluster.jobs.runs if r.name == "twice-1-a"]) == 2
