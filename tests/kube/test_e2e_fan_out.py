"""Fan-out (M1-M6) on the real control plane: copies are Jobs like any step's, under the caps,
and a list read from an output is recorded in status before any copy's Job exists."""

from __future__ import annotations

import json

from kube.realcluster import step, workflow
from operator_harness import max_overlap
from stepflow.env_values import expand_references
from stepflow.status import parse_time


def copy_intervals(status: dict, whole: str) -> list[tuple[float, float]]:
    steps = status["steps"]
    return [(parse_time(e["startedAt"]), parse_time(e["finishedAt"]))
            for e in steps.values() if e.get("matrixOf") == whole]


def env_of(kube, job: str) -> dict[str, str]:
    env = kube.get("jobs", job)["spec"]["template"]["spec"]["containers"][0]["env"]
    declared: dict[str, str] = {}
    for var in env:  # as the kubelet gives them to the container
        declared[var["name"]] = expand_references(var.get("value", ""), declared)
    return declared


def test_a_3x2_matrix_under_max_concurrency_2_runs_two_jobs_at_most_each_with_its_values(kube, operator):
    hostile = "$(HOME) `id` ;x"
    kube.create(workflow("grid", [
        step("deploy", duration="400ms", matrix={"region": ["eu", "us", hostile], "tier": ["a", "b"]}),
        step("after", dependsOn=["deploy"]),
    ], maxConcurrency=2))
    status = kube.wait_phase("grid")
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["progress"] == "7/7"
    assert status["groups"][0] == [f"deploy-{i}" for i in range(6)]
    assert max_overlap(copy_intervals(status, "deploy")) <= 2
    whole = status["steps"]["deploy"]
    assert whole["phase"] == "Succeeded" and whole["copies"] == 6
    expected = [(r, t) for r in ("eu", "us", hostile) for t in ("a", "b")]  # the first name slowest
    for i, (region, tier) in enumerate(expected):
        entry = status["steps"][f"deploy-{i}"]
        assert entry["matrixOf"] == "deploy" and entry["matrix"] == {"region": region, "tier": tier}
        env = env_of(kube, entry["jobName"])
        assert (env["region"], env["tier"], env["STEPFLOW_MATRIX_INDEX"]) == (region, tier, str(i))
    after = parse_time(status["steps"]["after"]["startedAt"])
    assert after >= max(end for _, end in copy_intervals(status, "deploy"))


def test_a_list_from_an_output_fans_out_into_50_copies_whose_outputs_reach_a_consumer(kube, operator):
    services = [f"svc-{i}" for i in range(50)]
    kube.create(workflow("changed", [
        step("list", message="services=" + json.dumps(services), outputs=["services"]),
        step("build", matrix={"service": {"fromOutput": {"step": "list", "output": "services"}}},
             message="image=built", outputs=["image"]),
        step("report", env=[{"name": "IMAGES",
                             "valueFrom": {"stepOutput": {"step": "build", "output": "image"}}}]),
    ], maxConcurrency=10))
    status = kube.wait_phase("changed", timeout=180)
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["progress"] == "52/52"
    copies = [n for n, e in status["steps"].items() if e.get("matrixOf") == "build"]
    assert sorted(copies) == sorted(f"build-{i}" for i in range(50))
    assert [status["steps"][f"build-{i}"]["matrix"]["service"] for i in range(50)] == services
    assert status["groups"][1] == [f"build-{i}" for i in range(50)]
    assert len(kube.jobs("changed")) == 52
    assert env_of(kube, status["steps"]["report"]["jobName"])["IMAGES"] == json.dumps(["built"] * 50)
    events = [e for e in kube.events("changed") if e["reason"] == "MatrixExpanded"]
    assert len(events) == 1 and "50 copies" in events[0]["message"]
