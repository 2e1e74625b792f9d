"""The status document both executors publish: shape, conditions, invalid specs, size."""

from __future__ import annotations

import json
import re

import pytest

from builders import plan_of, step, workflow
from simulate import simulate
from stepflow.engine import FAILED, RUNNING, SUCCEEDED, StepState, apply_skips, decide
from stepflow.plan import compile_workflow
from stepflow.spec import FieldError
from stepflow.status import (
    build_status,
    conditions,
    human_duration,
    invalid_status,
    parse_time,
    rfc3339,
    states_from_status,
)

T0 = 1_764_106_255.123  # 2025-11-25T21:30:55.123Z
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def finished_status(plan, durations=None, fails=(), **kwargs):
    result = simulate(plan, durations, fails, t0=T0)
    status = build_status(plan, result.states, result.decision, now=result.end_time, started_at=T0,
                          finished_at=result.end_time, **kwargs)
    return status, result


def condition(status, kind):
    return next(c for c in status["conditions"] if c["type"] == kind)


# --- times ---------------------------------------------------------------------------------------

def test_rfc3339_has_milliseconds_and_utc_z():
    assert rfc3339(T0) == "2025-11-25T21:30:55.123Z"
    assert rfc3339(None) is None
    assert parse_time(rfc3339(T0)) == pytest.approx(T0, abs=1e-3)


def test_parse_time_accepts_kubernetes_second_precision():
    assert parse_time("2025-11-25T21:30:55Z") == pytest.approx(T0 - 0.123, abs=1e-6)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.85, "850ms"), (4.25, "4.2s"), (42, "42s"), (185, "3m05s"), (7260, "2h01m"), (None, "")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_a_run_seen_ending_late_ends_with_its_last_step_not_when_it_was_seen():
    # An operator restarted 60 s later catches up: the run ended with its last step.
    plan = plan_of([step("a"), step("b")])
    states = {"a": StepState(phase=SUCCEEDED, started_at=T0, finished_at=T0 + 1),
              "b": StepState(phase=SUCCEEDED, started_at=T0 + 1, finished_at=T0 + 2)}
    decision = decide(plan, states, now=T0 + 60, started_at=T0)
    status = build_status(plan, states, decision, now=T0 + 60, started_at=T0)
    assert parse_time(status["finishedAt"]) == pytest.approx(T0 + 2, abs=1e-3)
    assert status["duration"] == "2.0s"


# --- shape -------------------------------------------------------------------------------------

def test_finished_status_shape():
    plan = plan_of([step("lint", parallel=True, type="validation"), step("test", parallel=True),
                    step("ship", type="release")], name="release")
    status, _ = finished_status(plan, {"lint": 1, "test": 2, "ship": 0.5},
                                observed_generation=4, run_generation=4)
    assert status["phase"] == SUCCEEDED
    assert status["progress"] == "3/3"
    assert status["groups"] == [["lint", "test"], ["ship"]]
    assert status["observedGeneration"] == 4 and status["runGeneration"] == 4
    assert status["startedAt"] == "2025-11-25T21:30:55.123Z"
    assert RFC3339_MS.match(status["finishedAt"])
    assert parse_time(status["finishedAt"]) - parse_time(status["startedAt"]) == pytest.approx(2.5, abs=1e-3)
    assert status["duration"] == "2.5s"
    assert set(status["steps"]) == {"lint", "test", "ship"}  # a map keyed by step name
    lint, ship = status["steps"]["lint"], status["steps"]["ship"]
    assert (lint["group"], lint["index"], lint["type"], lint["phase"]) == (0, 0, "validation", SUCCEEDED)
    assert (ship["group"], ship["index"], ship["type"]) == (1, 2, "release")
    assert lint["attempts"] == 1
    for entry in status["steps"].values():
        assert RFC3339_MS.match(entry["startedAt"]) and RFC3339_MS.match(entry["finishedAt"])
    json.dumps(status)  # plain JSON, as a merge patch needs


def test_finally_steps_are_marked_and_listed_after_the_main_groups():
    doc = workflow(step("build", outputs=["tag"], parallel=True), step("lint", parallel=True), step("ship"))
    doc["spec"]["finally"] = [step("notify", parallel=True), step("unlock", parallel=True), step("report")]
    plan = compile_workflow(doc)
    status, _ = finished_status(plan)
    assert status["groups"] == [["build", "lint"], ["ship"], ["notify", "unlock"], ["report"]]
    marked = {name for name, entry in status["steps"].items() if entry.get("finally")}
    assert marked == {"notify", "unlock", "report"}  # X4; main entries omit the flag
    assert states_from_status(status)["report"].phase == SUCCEEDED


def test_failed_step_records_exit_code_and_termination_message():
    plan = plan_of("s a, s b")
    states = {"a": StepState(FAILED, reason="Error", message="exited with code 3", started_at=T0,
                             finished_at=T0 + 1, attempts=2, exit_code=3,
                             termination_message="boom: disk full", job_name="wf-1-a")}
    decision = decide(plan, states, now=T0 + 1, started_at=T0)
    states = apply_skips(states, decision, T0 + 1)  # as both executors do before publishing
    status = build_status(plan, states, decision, now=T0 + 1, started_at=T0)
    a = status["steps"]["a"]
    assert (a["phase"], a["exitCode"], a["terminationMessage"]) == (FAILED, 3, "boom: disk full")
    assert (a["attempts"], a["jobName"], a["reason"]) == (2, "wf-1-a", "Error")
    b = status["steps"]["b"]
    assert (b["phase"], b["reason"]) == ("Skipped", "PrerequisiteFailed") and '"a"' in b["message"]
    assert "startedAt" not in b and RFC3339_MS.match(b["finishedAt"])
    assert status["phase"] == FAILED and status["progress"] == "2/2"


def test_skipped_and_pending_steps_say_why():
    plan = plan_of("p a, p b, p c, s d", maxConcurrency=2)
    states = {"a": StepState(RUNNING, started_at=T0), "b": StepState(RUNNING, started_at=T0)}
    decision = decide(plan, states, now=T0, started_at=T0)
    status = build_status(plan, states, decision, now=T0 + 3, started_at=T0)
    assert status["phase"] == RUNNING
    assert status["steps"]["c"]["reason"] == "WaitingForSlot"
    assert status["steps"]["d"]["reason"] == "WaitingForPrerequisites"
    assert "finishedAt" not in status and status["duration"] == "3.0s"


def test_continued_on_error_is_flagged():
    plan = plan_of([step("a", continueOnError=True), step("b")])
    status, _ = finished_status(plan, fails={"a"})
    assert status["phase"] == SUCCEEDED
    assert status["steps"]["a"]["continuedOnError"] is True
    assert "continuedOnError" not in status["steps"]["b"]


def test_failed_workflow_message_names_every_failed_step():
    plan = plan_of("p a, p b, p c, s d")
    status, _ = finished_status(plan, fails={"a", "c"})
    assert status["phase"] == FAILED and status["reason"] == "StepsFailed"
    assert '"a"' in status["message"] and '"c"' in status["message"]
    assert status["steps"]["d"]["phase"] == "Skipped"


def test_status_reads_back_into_the_same_states():
    """The operator resumes from the status after a restart: nothing may be lost."""
    plan = plan_of("p a, p b, s c")
    status, result = finished_status(plan, {"a": 1.25, "b": 2.5}, fails={"b"})
    restored = states_from_status(json.loads(json.dumps(status)))
    for name, state in result.states.items():
        back = restored[name]
        assert (back.phase, back.reason, back.message, back.attempts) == \
            (state.phase, state.reason, state.message, state.attempts)
        if state.phase == FAILED:  # DESIGN records the exit code of failed steps
            assert back.exit_code == state.exit_code == 1
        for before, after in ((state.started_at, back.started_at), (state.finished_at, back.finished_at)):
            assert (before is None) == (after is None)
            if before is not None:
                assert after == pytest.approx(before, abs=1e-3)


# --- conditions (kstatus) ------------------------------------------------------------------------

@pytest.mark.parametrize(("phase", "truth"), [
    ("Pending", {"Ready": "False", "Reconciling": "True", "Stalled": "False", "Complete": "False",
                 "Failed": "False"}),
    ("Running", {"Ready": "False", "Reconciling": "True", "Stalled": "False", "Complete": "False",
                 "Failed": "False"}),
    ("Suspended", {"Ready": "False", "Reconciling": "True", "Stalled": "False", "Complete": "False",
                   "Failed": "False"}),
    ("Succeeded", {"Ready": "True", "Reconciling": "False", "Stalled": "False", "Complete": "True",
                   "Failed": "False"}),
    ("Failed", {"Ready": "False", "Reconciling": "False", "Stalled": "True", "Complete": "False",
                "Failed": "True"}),
])
def test_conditions_follow_kstatus(phase, truth):
    result = conditions(phase, "Because", "some message", 7, T0)
    assert {c["type"]: c["status"] for c in result} == truth
    for c in result:
        assert c["observedGeneration"] == 7
        assert c["reason"] == "Because" and c["message"] == "some message"
        assert RFC3339_MS.match(c["lastTransitionTime"])


def test_last_transition_time_is_kept_while_a_condition_holds():
    first = conditions("Running", "Running", "", 1, T0)
    later = conditions("Running", "Running", "2 of 3 running", 1, T0 + 60, previous=first)
    assert [c["lastTransitionTime"] for c in later] == [c["lastTransitionTime"] for c in first]
    done = conditions("Succeeded", "Succeeded", "", 1, T0 + 120, previous=later)
    times = {c["type"]: c["lastTransitionTime"] for c in done}
    assert times["Ready"] == times["Reconciling"] == times["Complete"] == rfc3339(T0 + 120)
    assert times["Stalled"] == times["Failed"] == rfc3339(T0)  # still False: unchanged


def test_build_status_keeps_transition_times_from_the_previous_status():
    plan = plan_of("s a, s b")
    running = {"a": StepState(RUNNING, started_at=T0)}
    first = build_status(plan, running, decide(plan, running, now=T0, started_at=T0), now=T0, started_at=T0)
    second = build_status(plan, running, decide(plan, running, now=T0 + 5, started_at=T0), now=T0 + 5,
                          started_at=T0, previous=first)
    assert condition(second, "Reconciling")["lastTransitionTime"] == rfc3339(T0)


# --- invalid specs -------------------------------------------------------------------------------

def test_invalid_status_lists_every_error_and_stalls():
    errors = [FieldError("spec.steps[0].name", 'step "A" is not a DNS-1123 label'),
              FieldError("spec.steps[1].dependsOn[0]", 'step "b" depends on unknown step "x"')]
    status = invalid_status(errors, now=T0, observed_generation=3)
    assert (status["phase"], status["reason"]) == (FAILED, "InvalidSpec")
    assert status["errors"] == [str(e) for e in errors]
    assert "spec.steps[0].name" in status["message"] and "spec.steps[1].dependsOn[0]" in status["message"]
    assert status["observedGeneration"] == 3
    assert condition(status, "Stalled")["status"] == "True"
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Reconciling")["status"] == "False"
    assert RFC3339_MS.match(status["finishedAt"])


# --- size (DESIGN target: a 1,000-step status < 256 KiB) ----------------------------------------

def thousand_step_status(name_format: str, workflow: str, outputs: bool = False) -> dict:
    names = [name_format.format(i) for i in range(1000)]
    declared = {"outputs": ["tag"]} if outputs else {}
    plan = plan_of([step(n, group=i // 10 + 1, type="deploy", **declared) for i, n in enumerate(names)],
                   maxConcurrency=10, name=workflow)
    # finished as either executor records it; job names as the operator makes them
    # (<workflow>-<generation>-<step>, at most 63 characters)
    states = {n: StepState(SUCCEEDED, started_at=T0 + i // 10 * 1.5,
                           finished_at=T0 + i // 10 * 1.5 + 1.234, attempts=1, exit_code=0,
                           job_name=f"{workflow}-12-{n}"[:63],
                           outputs={"tag": f"v1.4.2-{i:04d}"} if outputs else {})
              for i, n in enumerate(names)}
    end = T0 + 150
    decision = decide(plan, states, now=end, started_at=T0)
    return build_status(plan, states, decision, now=end, started_at=T0, finished_at=end,
                        observed_generation=12, run_generation=12)


def size_kib(status: dict) -> float:
    return len(json.dumps(status, separators=(",", ":")).encode()) / 1024


def test_status_of_a_finished_1000_step_workflow_is_under_256_kib():
    status = thousand_step_status("step-{:04d}", "release")
    assert status["phase"] == SUCCEEDED and len(status["steps"]) == 1000
    assert size_kib(status) < 256


def test_status_of_a_finished_1000_step_workflow_with_realistic_names_is_under_256_kib():
    status = thousand_step_status("deploy-region-{:04d}", "nightly-release")
    assert size_kib(status) < 256


def test_condition_messages_are_capped_while_status_message_stays_whole():
    message = "step " + ", ".join(f'"step-{i:04d}"' for i in range(200)) + " failed"
    result = conditions("Failed", "StepsFailed", message, 1, now=0.0)
    assert all(len(c["message"]) <= 1024 and c["message"].endswith("…") for c in result)


def test_the_status_of_a_worst_case_workflow_stays_bounded_and_says_what_was_cut():
    """1,000 failed steps with 63-character names and long output made a 1.45 MB Workflow,
    close to etcd's 1.5 MiB limit, with a 67 KB message."""
    import json

    from builders import plan_of, step
    from stepflow.engine import FAILED, StepState, decide
    from stepflow.status import MAX_STATUS_BYTES, build_status

    names = [f"{i:04d}-" + "x" * 58 for i in range(1000)]
    plan = plan_of([step(n, parallel=True) for n in names], failurePolicy="Continue")
    states = {n: StepState(phase=FAILED, reason="BackoffLimitExceeded", message="Job has reached the "
                           "specified backoff limit", started_at=T0, finished_at=T0 + 1, attempts=1,
                           exit_code=1, termination_message="e" * 1024, job_name=n[:63])
              for n in names}
    decision = decide(plan, states, now=T0 + 2, started_at=T0)
    status = build_status(plan, states, decision, now=T0 + 2, started_at=T0)
    size = len(json.dumps(status, separators=(",", ":")))  # as the API server stores it
    assert size <= MAX_STATUS_BYTES, size
    assert "terminationMessage of 1000 step(s) cut" in status["trimmed"]
    assert len(status["message"]) < 2500 and status["message"].endswith("failed")
    assert "more" in status["message"]  # the names that did not fit are counted, not dropped
    assert all(len(c["message"]) <= 1024 for c in status["conditions"])
    entry = status["steps"][names[0]]
    assert entry["terminationMessage"].startswith("…") and entry["exitCode"] == 1
    assert entry["reason"] == "BackoffLimitExceeded" and entry["phase"] == "Failed"



def test_a_1000_step_status_with_a_small_output_on_every_step_stays_under_256_kib():
    """Issue 9: outputs live in status.steps.<name>.outputs, read by kubectl, Argo CD and Flux."""
    status = thousand_step_status("step-{:04d}", "release", outputs=True)
    assert status["steps"]["step-0999"]["outputs"] == {"tag": "v1.4.2-0999"}
    assert size_kib(status) < 256


def test_a_matrix_steps_own_entry_leaves_out_an_empty_type_and_keeps_one_given():
    plan = plan_of([step("plain", matrix={"R": ["eu", "us"]}),
                    step("typed", matrix={"R": ["eu"]}, type="deploy")])
    status, _ = finished_status(plan)
    plain, typed = status["steps"]["plain"], status["steps"]["typed"]
    assert plain["copies"] == 2 and "type" not in plain
    assert typed["copies"] == 1 and typed["type"] == "deploy" == status["steps"]["typed-0"]["type"]
