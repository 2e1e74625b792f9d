"""Job names, manifests and observations: the operator's pure half."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from builders import step, workflow
from stepflow.cluster_refusals import image_errors
from stepflow.engine import FAILED, RUNNING, SUCCEEDED, WAITING_FOR_ADMISSION, StepState
from stepflow.operator.jobs import (
    build_job,
    failure_details,
    job_name,
    job_outcome,
    observe_job,
    pod_problem,
    pod_report,
    spec_hash,
)
from stepflow.plan import compile_workflow
from stepflow.status import parse_time, step_entry, step_state

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes' own rules (k8s.io/apimachinery/pkg/util/validation): IsDNS1123Subdomain and
# IsValidLabelValue. A Job's name is also its pods' job-name label, so it must be both.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL_TEXT = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
WORKFLOW_NAMES = st.lists(DNS_LABEL_TEXT, min_size=1, max_size=8).map(".".join).filter(lambda n: len(n) <= 63)


def test_job_name_is_deterministic_per_run_and_step():
    assert job_name("deploy", 3, "build") == "deploy-3-build"
    assert job_name("deploy", 3, "build") == job_name("deploy", 3, "build")
    assert job_name("deploy", 4, "build") != job_name("deploy", 3, "build")


def test_long_job_names_are_shortened_with_a_hash_and_stay_unique():
    workflow_name = "w" * 60
    a = job_name(workflow_name, 12, "s" * 63)
    b = job_name(workflow_name, 12, "s" * 62 + "t")
    assert len(a) <= 63 and len(b) <= 63
    assert DNS_LABEL.match(a) and DNS_LABEL.match(b)
    assert a != b


def test_a_cut_at_a_dot_never_leaves_an_invalid_name():
    """Found by hand: 51 a's, '.bc' and a long step gave 'aaa…a.-bc2ff7d067'."""
    name = job_name("a" * 51 + ".bc", 1, "long-step-name")
    assert DNS_SUBDOMAIN.match(name) and LABEL_VALUE.match(name) and len(name) <= 63, name


@settings(max_examples=300, deadline=None)
@given(WORKFLOW_NAMES, st.integers(min_value=1, max_value=2**63), DNS_LABEL_TEXT)
def test_every_job_name_and_label_is_valid_for_kubernetes(workflow_name, generation, step_name):
    name = job_name(workflow_name, generation, step_name)
    assert len(name) <= 63 and DNS_SUBDOMAIN.match(name) and LABEL_VALUE.match(name), name
    plan = compile_workflow(workflow(step(step_name), name=workflow_name))
    manifest = build_job(plan, plan.steps[0], namespace="ns", owner_uid="u", generation=generation)
    for value in manifest["metadata"]["labels"].values():
        assert len(value) <= 63 and LABEL_VALUE.match(value), value
    # Events are created with generateName "<workflow>.": the name the API server makes is
    # "<workflow>.<5 characters>", a valid subdomain whenever the workflow name is one.
    assert DNS_SUBDOMAIN.match(f"{workflow_name}.x7k2p")


def test_spec_hash_ignores_suspend_and_max_concurrency_only():
    base = {"steps": [{"name": "a", "script": "true"}], "maxConcurrency": 2}
    assert spec_hash(base) == spec_hash({**base, "maxConcurrency": 9, "suspend": True})
    assert spec_hash(base) != spec_hash({**base, "failurePolicy": "FailFast"})


def _plan(**spec):
    return compile_workflow(workflow(
        step("build", script="make", type="build", retries=2, timeoutSeconds=30,
             env=[{"name": "A", "value": "step"}]),
        defaults={"image": "alpine:3.20", "env": [{"name": "A", "value": "default"},
                                                 {"name": "B", "value": "b"}]}, **spec))


def test_build_job_maps_step_fields_to_the_job_spec():
    plan = _plan()
    job = build_job(plan, plan.steps[0], namespace="team-a", owner_uid="uid-1", generation=2)
    meta, spec = job["metadata"], job["spec"]
    assert meta["name"] == "wf-2-build" and meta["namespace"] == "team-a"
    assert meta["labels"]["stepflow.dev/workflow"] == "wf"
    assert meta["labels"]["stepflow.dev/step"] == "build"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "stepflow"
    owner = meta["ownerReferences"][0]
    assert owner["uid"] == "uid-1" and owner["controller"] and owner["kind"] == "Workflow"
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 30
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["image"] == "alpine:3.20"
    assert container["command"] == ["sh", "-c", "make"]
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "STEPFLOW_OUTPUTS": "/dev/termination-log", "A": "step", "B": "b"}


def test_pod_settings_come_from_defaults_and_the_step_wins():
    defaults = {"image": "alpine:3.20", "podSecurityContext": {"runAsNonRoot": True},
                "securityContext": {"allowPrivilegeEscalation": False},
                "tolerations": [{"key": "ci", "operator": "Exists"}],
                "nodeSelector": {"pool": "ci", "os": "linux"}}
    own = step("gpu", script="train", securityContext={"privileged": False},
               tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
               nodeSelector={"pool": "gpu"})
    plan = compile_workflow(workflow(step("plain", script="true"), own, defaults=defaults))
    plain, gpu = (build_job(plan, s, namespace="n", owner_uid="u", generation=1)["spec"]["template"]["spec"]
                  for s in plan.steps)
    assert plain["securityContext"] == {"runAsNonRoot": True}
    assert plain["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False}
    assert plain["tolerations"] == [{"key": "ci", "operator": "Exists"}]
    assert plain["nodeSelector"] == {"pool": "ci", "os": "linux"}
    assert gpu["securityContext"] == {"runAsNonRoot": True}  # pod-level: only defaults set it
    assert gpu["containers"][0]["securityContext"] == {"privileged": False}  # replaced as a whole
    assert gpu["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert gpu["nodeSelector"] == {"pool": "gpu", "os": "linux"}  # merged, the step's entry wins
    bare = build_job(_plan(), _plan().steps[0], namespace="n", owner_uid="u", generation=1)
    assert not {"securityContext", "tolerations", "nodeSelector"} & set(bare["spec"]["template"]["spec"])


def test_a_named_service_account_gets_its_token():
    plan = _plan(serviceAccountName="deployer")
    job = build_job(plan, plan.steps[0], namespace="n", owner_uid="u", generation=1)
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "deployer"
    assert "automountServiceAccountToken" not in pod


def test_a_step_without_any_image_is_an_error_for_the_operator():
    plan = compile_workflow(workflow(step("a"), step("b", image="busybox")))
    errors = image_errors(plan)
    assert [e.path for e in errors] == ["spec.steps[0].image"]
    assert '"a"' in errors[0].message


def _job(conditions=(), **status):
    return {"metadata": {"name": "wf-1-a", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [dict(type=t, status="True", **extra) for t, extra in conditions],
                       **status}}


def test_outcome_comes_from_conditions_not_counters():
    assert job_outcome(_job(succeeded=1))[0] == RUNNING  # counters alone decide nothing
    assert job_outcome(_job([("Complete", {})]))[0] == SUCCEEDED
    assert job_outcome(_job([("SuccessCriteriaMet", {})]))[0] == SUCCEEDED
    phase, reason, _ = job_outcome(_job([("Failed", {"reason": "BackoffLimitExceeded"})]))
    assert (phase, reason) == (FAILED, "BackoffLimitExceeded")


def test_failure_target_is_still_running_until_the_pod_has_stopped():
    """On DeadlineExceeded the Job controller sets FailureTarget, stops the pod gracefully, and
    sets Failed only once it is gone; a dependent must not start in between."""
    stopping = _job([("FailureTarget", {"reason": "DeadlineExceeded",
                                        "message": "Job was active longer than specified deadline"})])
    phase, reason, message = job_outcome(stopping)
    assert (phase, reason) == (RUNNING, "DeadlineExceeded")
    assert message == "Job was active longer than specified deadline; its pod is stopping"
    stopped = _job([("FailureTarget", {"reason": "DeadlineExceeded"}),
                    ("Failed", {"reason": "DeadlineExceeded"})])
    assert job_outcome(stopped)[:2] == (FAILED, "DeadlineExceeded")


def test_observe_keeps_terminal_states_and_counts_attempts():
    done = StepState(phase="Cancelled", reason="FailFast")
    assert observe_job(done, _job([("Complete", {})]), now=0.0) is done
    failed = observe_job(StepState(phase=RUNNING),
                         _job([("Failed", {"reason": "BackoffLimitExceeded"})], failed=3,
                              startTime="2026-01-01T00:00:01Z"), now=2e9)
    assert failed.phase == FAILED and failed.attempts == 3 and failed.job_name == "wf-1-a"
    assert failed.started_at is not None


def test_attempts_count_the_pod_the_job_controller_has_not_counted_yet():
    """The real Job controller's FailureTarget update still lists the last pod as uncounted."""
    job = _job([("FailureTarget", {"reason": "BackoffLimitExceeded"})], failed=1,
               uncountedTerminatedPods={"failed": ["uid-2"]}, startTime="2026-01-01T00:00:01Z")
    assert observe_job(StepState(phase=RUNNING), job, now=2e9).attempts == 2


def _pod(created, code=None, message="", scheduled=None):
    status = {}
    if code is not None:
        status["containerStatuses"] = [
            {"name": "step", "state": {"terminated": {"exitCode": code, "message": message}}}]
    if scheduled is not None:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": scheduled}]
    return {"metadata": {"creationTimestamp": created}, "status": status}


def test_failure_details_reads_the_newest_pod_once_it_has_ended():
    first, second = _pod("2026-01-01T00:00:01Z", 1, "first"), _pod("2026-01-01T00:00:05Z", 3, "disk full\n")
    assert failure_details(map(pod_report, [first, second])) == (3, "disk full")
    assert failure_details([]) == (None, "")
    # The retry's pod still runs: the first attempt's exit code is not the step's.
    assert failure_details(map(pod_report, [first, _pod("2026-01-01T00:00:05Z")])) == (None, "")


def test_an_unschedulable_pod_is_the_steps_problem_until_a_newer_pod_is_fine():
    why = "0/2 nodes are available: 2 node(s) didn't match"
    stuck = _pod("2026-01-01T00:00:01Z", scheduled=why)
    assert pod_problem([pod_report(stuck)]) == ("Unschedulable", why)
    assert pod_problem([pod_report(stuck), pod_report(_pod("2026-01-01T00:00:09Z"))]) == ("", "")
    assert pod_problem([]) == ("", "")


def test_a_sub_second_step_never_ends_before_it_started():
    started = parse_time("2026-01-01T00:00:05.700Z")
    job = _job([("Complete", {})], completionTime="2026-01-01T00:00:05Z")  # whole seconds
    seen_at = parse_time("2026-01-01T00:00:05.900Z")
    state = observe_job(StepState(phase=RUNNING, started_at=started), job, now=seen_at)
    assert state.finished_at == seen_at  # bounded by completionTime + 1 s and by the observation
    late = observe_job(StepState(phase=RUNNING, started_at=started), job, now=started + 60)
    assert late.finished_at == parse_time("2026-01-01T00:00:06Z")


# --- R2 and R3 ---------------------------------------------------------------------------------

def test_a_pooled_step_labels_its_job_with_the_pool():
    plan = compile_workflow(workflow(step("deploy", pool="prod"), defaults={"image": "alpine:3.20"}))
    job = build_job(plan, plan.steps[0], namespace="ns", owner_uid="u", generation=1)
    assert job["metadata"]["labels"]["stepflow.dev/pool"] == "prod"


def test_r3_a_queued_workflows_jobs_are_suspended_with_the_queue_label_on_the_job_only():
    plan = _plan(queueName="team-a")
    job = build_job(plan, plan.steps[0], namespace="ns", owner_uid="u", generation=1)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    # On the pods, the label would hand them to Kueue's pod integration as well.
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    plain = build_job(_plan(), plan.steps[0], namespace="ns", owner_uid="u", generation=1)
    assert "suspend" not in plain["spec"]


def test_r3_a_suspended_job_waits_for_admission_and_its_start_is_the_admission():
    queued = {**_job(), "spec": {"suspend": True}}
    queued["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "team-a"}
    phase, reason, message = job_outcome(queued)
    assert (phase, reason) == (RUNNING, WAITING_FOR_ADMISSION) and '"team-a"' in message
    waiting = observe_job(StepState(phase=RUNNING, started_at=parse_time("2026-01-01T00:00:00Z")), queued,
                          now=2e9)
    admitted = observe_job(waiting, _job(startTime="2026-01-01T00:05:00Z"), now=2e9)
    assert admitted.reason == "" and admitted.started_at == parse_time("2026-01-01T00:05:00Z")


def test_r3_status_shows_a_step_waiting_for_admission_as_pending_and_reads_it_back_as_running():
    plan = _plan(queueName="team-a")
    state = StepState(phase=RUNNING, reason=WAITING_FOR_ADMISSION, message="m", started_at=1.0,
                      job_name="wf-1-build", attempts=1)
    entry = step_entry(plan, "build", state, {})
    assert entry["phase"] == "Pending" and entry["reason"] == WAITING_FOR_ADMISSION
    assert step_state(entry) == state
