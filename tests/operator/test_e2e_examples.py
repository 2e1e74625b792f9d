"""The operator runs the shipped examples end to end against the emulated API server."""

from __future__ import annotations

import pytest

from operator_harness import job_runs, load_example, max_overlap, wait_phase
from stepflow.plan import compile_workflow

pytestmark = pytest.mark.cluster(time_scale=0.5)

EXAMPLES = ["simple-parallel.yaml", "phase-groups.yaml", "mixed-sequential-parallel.yaml", "dag.yaml"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_succeeds_with_one_job_per_step_in_plan_order(cluster, operator, example):
    doc = load_example(example)
    plan = compile_workflow(doc)
    cluster.create(doc)
    status = wait_phase(cluster, doc["metadata"]["name"])

    assert status["phase"] == "Succeeded", status.get("message")
    assert status["progress"] == f"{len(plan.steps)}/{len(plan.steps)}"
    assert status["groups"] == [list(g) for g in plan.groups]
    assert cluster.requests.count(verb="create", resource="jobs", status=201) == len(plan.steps)
    assert sorted(j["metadata"]["name"] for j in cluster.objects("jobs")) == sorted(
        f"{doc['metadata']['name']}-1-{s.name}" for s in plan.steps)

    runs = job_runs(cluster, doc["metadata"]["name"])
    for step in plan.steps:  # nothing starts before its prerequisites have finished
        for prerequisite in plan.prerequisites(step.name):
            assert runs[prerequisite].finished <= runs[step.name].started + 0.01
    parallel_groups = [g for g in plan.groups if len(g) > 1 and all(
        plan.step_by_name[n].depends_on is None for n in g)]
    for group in parallel_groups:  # and the steps of a group really ran together
        overlap = max_overlap((runs[n].started, runs[n].finished) for n in group)
        assert overlap == min(len(group), plan.spec.max_concurrency)


def test_status_records_jobs_times_conditions_and_events(cluster, operator):
    doc = load_example("simple-parallel.yaml")
    cluster.create(doc)
    status = wait_phase(cluster, "parallel-checks")
    workflow = cluster.get("workflows", "parallel-checks")

    assert status["observedGeneration"] == workflow["metadata"]["generation"] == status["runGeneration"]
    entry = status["steps"]["check-dns"]
    assert entry["jobName"] == "parallel-checks-1-check-dns"
    assert entry["phase"] == "Succeeded" and entry["group"] == 0 and entry["index"] == 0
    assert entry["startedAt"].endswith("Z") and "." in entry["startedAt"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False",
                          "Complete": "True", "Failed": "False"}
    cluster.wait_for(lambda: any(e["reason"] == "WorkflowSucceeded" for e in cluster.events()))
    reasons = [e["reason"] for e in cluster.events()]
    assert reasons.count("StepStarted") == 4 and reasons.count("StepSucceeded") == 4
    job = cluster.get("jobs", "parallel-checks-1-report")
    assert job["metadata"]["ownerReferences"][0]["uid"] == workflow["metadata"]["uid"]
    assert job["metadata"]["labels"]["stepflow.dev/step"] == "report"


def test_api_writes_per_step_stay_within_budget(cluster, operator):
    doc = load_example("phase-groups.yaml")
    cluster.create(doc)
    wait_phase(cluster, "release-phases")
    writes = (cluster.requests.count(verb="create", resource="jobs")
              + cluster.requests.count(verb="patch", resource="workflows"))
    assert cluster.requests.count(verb="patch", resource="workflows", subresource=None) == 0
    assert writes / 6 <= 3, cluster.requests.summary()
