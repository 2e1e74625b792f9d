"""Fan-out (M1-M6) on the real control plane: copies are Jobs like any step's, under the caps,
and a list read from an output is recorded in status before any copy's Job exists."""

from __future__ import annotations

import json

from kube.realcluster import step, wait_for, workflow
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


def fan_out_from(producer: str, output: str, **fields) -> dict:
    """A step fanned out over a list its producer writes: ``{fromOutput: ...}`` under ``item``."""
    return step("each", matrix={"item": {"fromOutput": {"step": producer, "output": output}}}, **fields)


def job_names(kube, workflow_name: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in kube.jobs(workflow_name))


def copies_of(status: dict, whole: str) -> dict[str, dict]:
    """Each copy's entry by name, in copy order."""
    found = {n: e for n, e in status.get("steps", {}).items() if e.get("matrixOf") == whole}
    return dict(sorted(found.items(), key=lambda item: int(item[0].rsplit("-", 1)[1])))


def test_an_empty_list_from_an_output_skips_the_step_matrix_empty_and_its_dependants_run(kube, operator):
    kube.create(workflow("none", [
        step("list", message="items=[]", outputs=["items"]),
        fan_out_from("list", "items"),
        step("after", dependsOn=["each"]),
    ]))
    status = kube.wait_phase("none")
    assert status["phase"] == "Succeeded", status.get("message")
    each = status["steps"]["each"]
    assert (each["phase"], each["reason"]) == ("Skipped", "MatrixEmpty")
    assert 'output "items" of step "list"' in each["message"]
    assert status["steps"]["after"]["phase"] == "Succeeded"  # MatrixEmpty counts as success (M4)
    assert not copies_of(status, "each") and "copies" not in each
    assert job_names(kube, "none") == ["none-1-after", "none-1-list"]  # no Job for "each"
    assert not [e for e in kube.events("none") if e["reason"] == "MatrixExpanded"]


INVALID_LISTS = {  # workflow: (what "list" writes, what the message says of it)
    "not-json": ("items=eu, us", 'output "items" of step "list" is not JSON'),
    "an-object": ('items={"region": "eu"}', 'output "items" of step "list" holds a JSON object'),
    "a-number": ('items=["eu", 7]', 'output "items" of step "list" holds a JSON array whose item 1'),
}


def test_a_list_that_is_not_a_json_array_of_strings_fails_the_step_matrix_invalid(kube, operator):
    for name, (written, _) in INVALID_LISTS.items():
        kube.create(workflow(name, [
            step("list", message=written, outputs=["items"]),
            fan_out_from("list", "items"),
            step("after", dependsOn=["each"]),
        ]))
    for name, (_, said) in INVALID_LISTS.items():
        status = kube.wait_phase(name)
        assert status["phase"] == "Failed", name
        each = status["steps"]["each"]
        assert (each["phase"], each["reason"]) == ("Failed", "MatrixInvalid"), name
        assert said in each["message"], (name, each["message"])
        after = status["steps"]["after"]
        assert (after["phase"], after["reason"]) == ("Skipped", "PrerequisiteFailed"), name
        assert not copies_of(status, "each"), name
        assert job_names(kube, name) == [f"{name}-1-list"], name  # neither "each" nor "after" ran
        assert "each" in status["message"], (name, status["message"])


def running_copies(kube, workflow_name: str, count: int) -> dict[str, dict]:
    """Waits until ``count`` copies of "deploy" run, each with its Job; their entries."""
    def running() -> dict[str, dict] | None:
        found = {n: e for n, e in copies_of(kube.status(workflow_name), "deploy").items()
                 if e["phase"] == "Running"}
        return found if len(found) == count else None

    return wait_for(running, message=f"{count} copies of deploy never ran: {kube.status(workflow_name)}")


def test_fail_fast_cancels_the_running_copies_of_a_matrix_and_deletes_their_jobs(kube, operator):
    kube.create(workflow("fast", [
        step("deploy", hold=True, matrix={"region": ["eu", "us", "ap", "sa"]}),
        step("after"),
    ], failurePolicy="FailFast"))
    running_copies(kube, "fast", 4)
    assert job_names(kube, "fast") == [f"fast-1-deploy-{i}" for i in range(4)]
    kube.release("fast-1-deploy-0", exit_code=1)
    status = kube.wait_phase("fast")
    assert status["phase"] == "Failed"
    copies = copies_of(status, "deploy")
    assert copies["deploy-0"]["phase"] == "Failed" and copies["deploy-0"]["exitCode"] == 1
    for name in ("deploy-1", "deploy-2", "deploy-3"):
        assert (copies[name]["phase"], copies[name]["reason"]) == ("Cancelled", "FailFast"), name
        assert 'step "deploy-0" failed' in copies[name]["message"]
    assert status["steps"]["deploy"]["phase"] == "Failed"
    assert status["steps"]["after"]["phase"] == "Skipped"
    # The cancelled copies' Jobs are deleted; the failed copy's is kept, to be looked at.
    wait_for(lambda: job_names(kube, "fast") == ["fast-1-deploy-0"],
             message=f"the cancelled copies' Jobs are still there: {job_names(kube, 'fast')}")


def test_stop_after_group_lets_the_other_copies_finish_even_those_waiting_for_a_slot(kube, operator):
    kube.create(workflow("group", [
        step("deploy", hold=True, matrix={"region": ["eu", "us", "ap", "sa"]}),
        step("after"),
    ], failurePolicy="StopAfterGroup", maxConcurrency=2))
    running_copies(kube, "group", 2)
    kube.release("group-1-deploy-0", exit_code=1)
    wait_for(lambda: kube.step_phase("group", "deploy-0") == "Failed")
    status = kube.status("group")
    assert status["phase"] == "Running"
    assert status["steps"]["deploy-1"]["phase"] == "Running"  # not cancelled
    # The copies that waited for a slot still start, one by one, as the slots free.
    for index in (1, 2, 3):
        job = f"group-1-deploy-{index}"
        wait_for(lambda job=job: kube.get("jobs", job), message=f"{job} never created")
        kube.release(job)
    status = kube.wait_phase("group")
    assert status["phase"] == "Failed"
    assert {n: e["phase"] for n, e in copies_of(status, "deploy").items()} == {
        "deploy-0": "Failed", "deploy-1": "Succeeded", "deploy-2": "Succeeded", "deploy-3": "Succeeded"}
    assert max_overlap(copy_intervals(status, "deploy")) <= 2
    assert status["steps"]["deploy"]["phase"] == "Failed"
    assert status["steps"]["after"]["phase"] == "Skipped"
    assert "deploy-0" in status["message"]
    assert job_names(kube, "group") == [f"group-1-deploy-{i}" for i in range(4)]


def test_an_operator_killed_after_the_expansion_before_any_copy_job_resumes_the_recorded_copies(
        kube, fault_proxy, start_proxied):
    regions = ["eu-west", "us-east", "ap-south"]
    first = start_proxied()
    kube.create(workflow("resume", [
        step("list", hold=True, outputs=["regions"]),
        step("deploy", matrix={"region": {"fromOutput": {"step": "list", "output": "regions"}}}),
        step("after", dependsOn=["deploy"]),
    ]))
    wait_for(lambda: kube.get("jobs", "resume-1-list"))
    # From now on the API server refuses to create any Job: the expansion is written to status,
    # and no copy gets a Job.
    fault_proxy.fail(500, "create jobs", times=None)
    kube.release("resume-1-list", message="regions=" + json.dumps(regions))
    recorded = wait_for(lambda: copies_of(kube.status("resume"), "deploy"),
                        message="the expansion was never recorded")
    wait_for(lambda: fault_proxy.count("create jobs", fault=True) >= 1,
             message="the operator never tried to create a copy's Job")
    # Events are posted in the background after the status write; one still queued dies with
    # the operator. The new one must not post it again, so the first is waited for.
    wait_for(lambda: [e for e in kube.events("resume") if e["reason"] == "MatrixExpanded"],
             message="the expansion's Event was never posted")
    first.kill()
    assert job_names(kube, "resume") == ["resume-1-list"]
    assert list(recorded) == ["deploy-0", "deploy-1", "deploy-2"]
    assert [e["matrix"] for e in recorded.values()] == [{"region": r} for r in regions]
    assert all(e["phase"] == "Pending" for e in recorded.values())
    fault_proxy.clear()
    start_proxied()
    status = kube.wait_phase("resume")
    assert status["phase"] == "Succeeded", status.get("message")
    copies = copies_of(status, "deploy")
    assert {n: e["matrix"] for n, e in copies.items()} == {n: e["matrix"] for n, e in recorded.items()}
    assert all(e["phase"] == "Succeeded" for e in copies.values())
    # Exactly one Job per copy, and one for each other step: the API server created no more.
    assert job_names(kube, "resume") == sorted(
        ["resume-1-list", "resume-1-after"] + [f"resume-1-{n}" for n in copies])
    assert fault_proxy.count("create jobs", status=201) == 2 + len(regions)
    # Every status ever stored named the same copies with the same values.
    for obj in kube.recorder.seen:
        seen = copies_of(obj["status"], "deploy")
        assert not seen or {n: e["matrix"] for n, e in seen.items()} == {
            n: e["matrix"] for n, e in recorded.items()}
    events = [e for e in kube.events("resume") if e["reason"] == "MatrixExpanded"]
    assert len(events) == 1 and "3 copies" in events[0]["message"]
