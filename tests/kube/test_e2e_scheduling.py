"""Groups, dependsOn, caps and failure policies on the real control plane: the Jobs are run by
the real Job controller, scheduled by the real scheduler, and their pods played by kwok."""

from __future__ import annotations

import json

import pytest

from kube.realcluster import step, wait_for, workflow
from operator_harness import ROOT, load_example, max_overlap
from stepflow.status import parse_time
from stepflow.workflow_files import load_plan

# kwok plays the pods and runs no script, so a step that must write outputs is scripted apart
# (test_outputs_travel_through_the_termination_message_to_the_consumers_job below).
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.yaml") if "outputs:" not in p.read_text())


def intervals(status, names=None):
    steps = status["steps"]
    return [
        (parse_time(steps[n]["startedAt"]), parse_time(steps[n]["finishedAt"]))
        for n in (names or steps)
        if steps[n].get("startedAt") and steps[n].get("finishedAt")
    ]


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_succeeds_with_one_job_per_step_in_plan_order(kube, operator, example):
    doc = load_example(example, kube.namespace)
    plan = load_plan(ROOT / "examples" / example)  # with the step types the file holds, if any
    name = doc["metadata"]["name"]
    kube.kubectl("apply", "-f", str(ROOT / "examples" / example))  # the types too, in this namespace
    status = kube.wait_phase(name)

    assert status["phase"] == "Succeeded", status.get("message")
    assert status["progress"] == f"{len(plan.steps)}/{len(plan.steps)}"
    assert status["groups"] == [list(g) for g in plan.groups]
    assert sorted(j["metadata"]["name"] for j in kube.jobs(name)) == sorted(
        f"{name}-1-{s.name}" for s in plan.steps
    )
    for job in kube.finished_jobs(name):  # the real Job controller's verdict, not ours
        assert {c["type"] for c in job["status"]["conditions"] if c["status"] == "True"} >= {"Complete"}
        assert job["metadata"]["ownerReferences"][0]["uid"] == kube.get("workflows", name)["metadata"]["uid"]


def test_parallel_steps_run_together_and_the_barrier_holds(kube, operator):
    steps = [
        step("a", "2s", parallel=True),
        step("b", "2s", parallel=True),
        step("c", "300ms"),
        step("d", "1s", parallelGroup=1),
        step("e", "1s", parallelGroup=1),
    ]
    kube.create(workflow("groups", steps))
    status = kube.wait_phase("groups")
    assert status["phase"] == "Succeeded"
    assert status["groups"] == [["a", "b"], ["c"], ["d", "e"]]
    assert max_overlap(intervals(status, ["a", "b"])) == 2
    assert max_overlap(intervals(status, ["d", "e"])) == 2
    started = {n: parse_time(s["startedAt"]) for n, s in status["steps"].items()}
    ended = {n: parse_time(s["finishedAt"]) for n, s in status["steps"].items()}
    assert started["c"] >= max(ended["a"], ended["b"])
    assert min(started["d"], started["e"]) >= ended["c"]


def test_depends_on_starts_a_step_as_soon_as_its_prerequisites_succeed(kube, operator):
    steps = [
        step("slow", "3s"),
        step("quick", "200ms", dependsOn=[]),
        step("after-quick", dependsOn=["quick"]),
    ]
    kube.create(workflow("dag", steps))
    status = kube.wait_phase("dag")
    assert status["phase"] == "Succeeded"
    # after-quick did not wait for the sequential barrier behind "slow"
    assert parse_time(status["steps"]["after-quick"]["startedAt"]) < parse_time(
        status["steps"]["slow"]["finishedAt"]
    )


def test_max_concurrency_caps_running_jobs_and_shows_waiting_for_slot(kube, operator):
    kube.create(workflow("capped", [step(f"s{i}", "1s", parallel=True) for i in range(5)], maxConcurrency=2))
    status = kube.wait_phase("capped", timeout=90)
    assert status["phase"] == "Succeeded"
    assert max_overlap(intervals(status)) == 2
    waited = {
        n
        for seen in kube.recorder.seen
        for n, s in seen["status"].get("steps", {}).items()
        if s.get("reason") == "WaitingForSlot"
    }
    assert waited == {"s2", "s3", "s4"}
    starts = [parse_time(status["steps"][f"s{i}"]["startedAt"]) for i in range(5)]
    assert starts == sorted(starts)  # document order


def test_the_operator_wide_cap_is_shared_first_come_first_served(kube, start_operator):
    start_operator("--max-running-jobs", "2")
    kube.create(workflow("first", [step(f"a{i}", "1s", parallel=True) for i in range(3)]))
    wait_for(lambda: kube.jobs("first"))
    kube.create(workflow("second", [step(f"b{i}", "1s", parallel=True) for i in range(2)]))
    statuses = {name: kube.wait_phase(name, timeout=90) for name in ("first", "second")}
    assert all(s["phase"] == "Succeeded" for s in statuses.values())
    everything = intervals(statuses["first"]) + intervals(statuses["second"])
    assert max_overlap(everything) == 2
    last_of_first = max(start for start, _ in intervals(statuses["first"]))
    first_of_second = min(start for start, _ in intervals(statuses["second"]))
    assert last_of_first <= first_of_second  # the earlier workflow's waiting step went first


def test_stop_after_group_finishes_the_group_then_skips_the_rest(kube, operator):
    steps = [
        step("a", exit_code=3, message="tests failed: 2 of 40", parallel=True),
        step("b", exit_code=1, parallel=True),
        step("c", "1s", parallel=True),
        step("d"),
        step("e", dependsOn=["d"]),
    ]
    kube.create(workflow("f1", steps, maxConcurrency=2))
    status = kube.wait_phase("f1")
    phases = {n: e["phase"] for n, e in status["steps"].items()}
    assert phases == {"a": "Failed", "b": "Failed", "c": "Succeeded", "d": "Skipped", "e": "Skipped"}
    assert status["phase"] == "Failed"
    assert '"a"' in status["message"] and '"b"' in status["message"]
    assert status["steps"]["a"]["exitCode"] == 3
    assert status["steps"]["a"]["terminationMessage"] == "tests failed: 2 of 40"
    assert status["steps"]["a"]["reason"] == "BackoffLimitExceeded"  # the real Job controller's
    assert {j["metadata"]["labels"]["stepflow.dev/step"] for j in kube.jobs("f1")} == {"a", "b", "c"}
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert (
        conditions["Stalled"] == "True" and conditions["Failed"] == "True" and conditions["Ready"] == "False"
    )


def test_fail_fast_stops_running_jobs_and_their_pods(kube, operator):
    steps = [
        step("quick-fail", "300ms", exit_code=2, parallel=True),
        step("slow", hold=True, parallel=True),
        step("after"),
    ]
    kube.create(workflow("ff", steps, failurePolicy="FailFast"))
    status = kube.wait_phase("ff")
    phases = {n: e["phase"] for n, e in status["steps"].items()}
    assert phases == {"quick-fail": "Failed", "slow": "Cancelled", "after": "Skipped"}
    assert status["steps"]["slow"]["reason"] == "FailFast"
    wait_for(lambda: kube.get("jobs", "ff-1-slow") is None, message="the cancelled Job is still there")
    wait_for(lambda: not kube.pods("ff-1-slow"), message="the cancelled Job's pod is still there")


def test_continue_runs_what_does_not_depend_on_the_failure(kube, operator):
    steps = [
        step("broken", exit_code=1),
        step("independent", dependsOn=[]),
        step("downstream", dependsOn=["broken"]),
    ]
    kube.create(workflow("cont", steps, failurePolicy="Continue"))
    status = kube.wait_phase("cont")
    phases = {n: e["phase"] for n, e in status["steps"].items()}
    assert phases == {"broken": "Failed", "independent": "Succeeded", "downstream": "Skipped"}
    assert status["phase"] == "Failed"
    assert "broken" in status["steps"]["downstream"]["message"]


def test_continue_on_error_records_the_failure_but_succeeds(kube, operator):
    kube.create(workflow("coe", [step("flaky", exit_code=1, continueOnError=True), step("next")]))
    status = kube.wait_phase("coe")
    assert status["phase"] == "Succeeded"
    assert (
        status["steps"]["flaky"]["phase"] == "Failed" and status["steps"]["flaky"]["continuedOnError"] is True
    )
    assert status["steps"]["next"]["phase"] == "Succeeded"


def test_the_job_spec_carries_pod_metadata_and_the_step_labels(kube, operator):
    labelled = step("a", podMetadata={"labels": {"team": "payments"}, "annotations": {"sidecar": "off"}})
    kube.create(
        workflow(
            "meta", [labelled], defaults={"image": "alpine:3.20", "podMetadata": {"labels": {"cost": "ci"}}}
        )
    )
    kube.wait_phase("meta")
    [pod] = kube.pods("meta-1-a")
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels["team"] == "payments" and labels["cost"] == "ci" and labels["stepflow.dev/step"] == "a"
    assert annotations["sidecar"] == "off"
    assert json.loads(kube.kubectl("get", "pods", "-l", "stepflow.dev/workflow=meta", "-o", "json"))["items"]


def test_status_records_jobs_times_conditions_and_events(kube, operator):
    kube.kubectl("apply", "-f", str(ROOT / "examples" / "simple-parallel.yaml"))
    status = kube.wait_phase("parallel-checks")
    live = kube.get("workflows", "parallel-checks")
    assert status["observedGeneration"] == live["metadata"]["generation"] == status["runGeneration"]
    entry = status["steps"]["check-dns"]
    assert entry["jobName"] == "parallel-checks-1-check-dns"
    assert entry["phase"] == "Succeeded" and entry["group"] == 0 and entry["index"] == 0
    assert entry["startedAt"].endswith("Z") and "." in entry["startedAt"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
        "Complete": "True",
        "Failed": "False",
    }
    wait_for(lambda: any(e["reason"] == "WorkflowSucceeded" for e in kube.events("parallel-checks")))
    events = kube.events("parallel-checks")
    # Starts and successes are gathered per workflow (a budget of 3 writes per step), and the workflow's
    # own Event, always the last, tells what is still gathered: every step is named as started and
    # as succeeded, in fewer Events than steps.
    ended = next(e for e in events if e["reason"] == "WorkflowSucceeded")
    gathered = [e for e in events if e["reason"] in ("StepStarted", "StepSucceeded")]
    assert all(e["firstTimestamp"] <= ended["firstTimestamp"] for e in gathered)
    assert len(gathered) + 1 < 4
    for verb in ("started", "succeeded"):
        text = " ".join(e["message"] for e in [*gathered, ended] if verb in e["message"])
        for name in ("check-dns", "check-certs", "check-quota", "report"):
            assert f'"{name}"' in text, (verb, name, [e["message"] for e in events])


def test_outputs_travel_through_the_termination_message_to_the_consumers_job(kube, operator):
    """O1-O3 and X1 on the real tier: kwok sets each pod's termination message, as the kubelet
    does from $STEPFLOW_OUTPUTS; the consumer's Job carries the value as a plain env value."""
    doc = load_example("release-pipeline.yaml", kube.namespace)
    messages = {"build": "tag=v1.4.2\nnoise for people", "test": "changed=true"}
    for entry in doc["spec"]["steps"]:
        if entry["name"] in messages:
            entry["podMetadata"] = {"annotations": {"test.stepflow.dev/message": messages[entry["name"]]}}
    kube.create(doc)
    name = doc["metadata"]["name"]
    status = kube.wait_phase(name)
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["steps"]["build"]["outputs"] == {"tag": "v1.4.2"}
    assert status["steps"]["notify"]["finally"] is True
    assert status["groups"][-1] == ["notify", "alert"]
    assert status["steps"]["alert"]["reason"] == "ConditionFalse"  # when: workflow.failed
    jobs = {j["metadata"]["labels"]["stepflow.dev/step"]: j for j in kube.jobs(name)}
    env = {e["name"]: e for e in jobs["deploy"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["IMAGE_TAG"] == {"name": "IMAGE_TAG", "value": "v1.4.2"}
    assert env["STEPFLOW_OUTPUTS"]["value"] == "/dev/termination-log"
    assert parse_time(status["steps"]["notify"]["startedAt"]) >= parse_time(
        status["steps"]["deploy"]["finishedAt"])


def test_a_step_that_writes_no_declared_output_fails_missing_output(kube, operator):
    doc = workflow("no-output", [step("build", outputs=["tag"], message="other=x"), step("after")])
    kube.create(doc)
    status = kube.wait_phase("no-output")
    assert status["phase"] == "Failed"
    build = status["steps"]["build"]
    assert (build["phase"], build["reason"]) == ("Failed", "MissingOutput") and '"tag"' in build["message"]
    assert status["steps"]["after"]["phase"] == "Skipped"


def test_conditions_skip_or_fail_steps_without_jobs_and_finally_reads_the_outcome(kube, operator):
    """W1-W3 and X1 on the real tier: a false condition skips its step (and a reader of its
    output), an evaluation error fails its step, neither gets a Job, and finally still runs."""
    changed = {"name": "CHANGED", "valueFrom": {"stepOutput": {"step": "check", "output": "changed"}}}
    url = {"name": "URL", "valueFrom": {"stepOutput": {"step": "deploy", "output": "url"}}}
    doc = workflow("gated", [
        step("check", outputs=["changed", "count"], message="changed=false\ncount=many"),
        step("deploy", parallel=True, outputs=["url"], when="steps.check.outputs.changed == 'true'",
             env=[changed]),
        step("audit", parallel=True, when="int(steps.check.outputs['count']) > 1"),
        step("verify", dependsOn=["deploy"], env=[url]),
        step("after", dependsOn=["deploy"]),
    ], failurePolicy="Continue")
    doc["spec"]["finally"] = [step("report", when="workflow.failed && steps.deploy.phase == 'Skipped'")]
    kube.create(doc)
    status = kube.wait_phase("gated")
    steps = status["steps"]
    outcome = {name: (entry["phase"], entry.get("reason")) for name, entry in steps.items()}
    assert outcome == {
        "check": ("Succeeded", None), "deploy": ("Skipped", "ConditionFalse"),
        "audit": ("Failed", "ConditionError"), "verify": ("Skipped", "OutputUnavailable"),
        "after": ("Succeeded", None), "report": ("Succeeded", None),
    }, outcome
    assert "steps.check.outputs.changed == 'true'" in steps["deploy"]["message"]
    assert status["phase"] == "Failed" and '"audit"' in status["message"]
    jobs = {j["metadata"]["labels"]["stepflow.dev/step"] for j in kube.jobs("gated")}
    assert jobs == {"check", "after", "report"}
    # Events follow the status writes from a background queue; the workflow's own comes last.
    wait_for(lambda: any(e["reason"] == "WorkflowFailed" for e in kube.events("gated")), timeout=15)
    events = kube.events("gated")
    skipped = [e for e in events if e["reason"] == "StepSkipped"]
    assert [e["message"] for e in skipped] == [
        'step "deploy" skipped: condition is false: steps.check.outputs.changed == \'true\'']
    assert any(e["reason"] == "StepFailed" and "ConditionError" in e["message"] for e in events)
