"""Outputs, conditions and finally steps in the engine: rules O2-O3, W1-W4 and X1-X4.

Each test drives the pure engine through the discrete-event simulator, the way both executors
drive it, and asserts what a user would read in the status.
"""

from __future__ import annotations

import pytest

from builders import plan_of, step, workflow
from simulate import simulate
from stepflow.engine import FAILED, RUNNING, SKIPPED, SUCCEEDED, WAITING_FOR_MAIN, StepState, decide
from stepflow.plan import compile_workflow


def with_finally(steps: list[dict], final: list[dict], **spec) -> object:
    doc = workflow(*steps, **spec)
    doc["spec"]["finally"] = final
    return compile_workflow(doc)


def reads(var: str, producer: str, output: str) -> dict:
    return {"name": var, "valueFrom": {"stepOutput": {"step": producer, "output": output}}}


# --- W1: the condition decides, once the prerequisites are over ------------------------------

def test_a_false_condition_skips_the_step_and_quotes_the_expression():
    plan = plan_of([step("test", outputs=["changed"]),
                    step("deploy", when="steps.test.outputs.changed == 'true'")])
    result = simulate(plan, outputs={"test": {"changed": "false"}})
    deploy = result.states["deploy"]
    assert (deploy.phase, deploy.reason) == (SKIPPED, "ConditionFalse")
    assert "steps.test.outputs.changed == 'true'" in deploy.message
    assert result.decision.phase == SUCCEEDED  # W3: a condition's skip is no failure


def test_a_true_condition_runs_the_step():
    plan = plan_of([step("test", outputs=["changed"]),
                    step("deploy", when="steps.test.outputs.changed == 'true'")])
    result = simulate(plan, outputs={"test": {"changed": "true"}})
    assert result.phase("deploy") == SUCCEEDED and "deploy" in result.start_order


def test_the_condition_sees_phase_exit_code_and_workflow_failed():
    plan = with_finally([step("a", continueOnError=True),
                         step("b", when="steps.a.phase == 'Failed' && steps.a.exitCode == 1")],
                        [step("f", when="!workflow.failed")])
    result = simulate(plan, fails={"a"})
    assert result.phase("b") == SUCCEEDED
    assert result.phase("f") == SUCCEEDED  # a failed with continueOnError: not a real failure


# --- workflow.failed: the main steps' outcome, for finally steps only (W2, X1) ----------------

def finally_on_failure(steps: list[dict], **spec) -> object:
    return with_finally(steps, [step("alert", parallel=True, when="workflow.failed"),
                                step("celebrate", parallel=True, when="!workflow.failed")], **spec)


def test_in_finally_workflow_failed_is_true_after_a_timeout():
    """F5: the run timed out, no step failed for real; "notify on failure" must still fire."""
    result = simulate(finally_on_failure([step("slow")], timeoutSeconds=5), durations={"slow": 60.0})
    assert result.states["slow"].reason == "Timeout"
    assert result.phase("alert") == SUCCEEDED and result.phase("celebrate") == SKIPPED
    assert result.decision.phase == FAILED and result.decision.reason == "Timeout"


def test_in_finally_workflow_failed_is_true_after_an_interruption():
    from stepflow.engine import Verdict

    def interrupt(sim):
        sim.stop = Verdict("Interrupted", "interrupted by the user")

    result = simulate(finally_on_failure([step("slow"), step("next")]), durations={"slow": 60.0},
                      events=[(1_001.0, interrupt)])
    assert result.states["slow"].phase == "Cancelled" and result.states["next"].reason == "Interrupted"
    assert result.phase("alert") == SUCCEEDED and result.phase("celebrate") == SKIPPED


def test_in_finally_workflow_failed_is_true_after_fail_fast_cancels():
    plan = finally_on_failure([step("bad", parallel=True), step("slow", parallel=True)],
                              failurePolicy="FailFast")
    result = simulate(plan, durations={"slow": 60.0}, fails={"bad"})
    assert result.states["slow"].phase == "Cancelled"
    assert result.phase("alert") == SUCCEEDED and result.phase("celebrate") == SKIPPED


def test_in_finally_workflow_failed_is_false_when_the_main_steps_succeeded_or_tolerated_a_failure():
    plan = finally_on_failure([step("flaky", continueOnError=True), step("fine")])
    result = simulate(plan, fails={"flaky"})
    assert result.phase("alert") == SKIPPED and result.phase("celebrate") == SUCCEEDED


def test_a_main_step_may_not_read_workflow_failed_since_it_would_depend_on_timing():
    """W2: every value a condition reads is final. Under Continue, whether an unrelated step has
    failed yet when this one's prerequisites end is a race, so a main step may not ask."""
    from stepflow.spec import SpecError

    doc = workflow(step("flaky", parallel=True), step("build", parallel=True),
                   step("deploy", depends_on=["build"], when="!workflow.failed && steps.build.phase != ''"),
                   failurePolicy="Continue")
    with pytest.raises(SpecError) as caught:
        compile_workflow(doc)
    assert [str(e) for e in caught.value.errors] == [
        'spec.steps[2].when: step "deploy" reads workflow.failed, which only a finally step may read: in '
        "a main step it would depend on timing (whether an unrelated step has failed yet); read a "
        "prerequisite's phase instead, such as steps['build'].phase == 'Failed'"]
    # In a string it is no read; in a finally step it is allowed.
    compile_workflow(workflow(step("a", when="'workflow.failed' != ''")))
    with_finally([step("a")], [step("f", when="workflow.failed")])


def test_an_evaluation_error_fails_the_step_condition_error():
    # An undeclared key cannot be read; `outputs.tag` exists only once the producer wrote it.
    plan = plan_of([step("a", outputs=["tag"]), step("b", when="steps.a.outputs.tag == 'x'")])
    result = simulate(plan, outputs={"a": {}})  # the executor would have failed a; here it did not
    assert (result.states["b"].phase, result.states["b"].reason) == (FAILED, "ConditionError")
    assert result.decision.phase == FAILED


# --- W3: a condition's skip counts as success for scheduling ---------------------------------

def test_a_condition_skip_never_blocks_a_dependent_or_the_barrier():
    plan = plan_of([step("a", when="false"), step("b"),
                    step("c", depends_on=["a"])])
    result = simulate(plan)
    assert result.phase("a") == SKIPPED
    assert result.phase("b") == SUCCEEDED and result.phase("c") == SUCCEEDED


def test_reading_the_output_of_a_condition_skipped_step_skips_output_unavailable():
    plan = plan_of([step("build", outputs=["tag"], when="false"),
                    step("deploy", env=[reads("TAG", "build", "tag")])])
    result = simulate(plan)
    deploy = result.states["deploy"]
    assert (deploy.phase, deploy.reason) == (SKIPPED, "OutputUnavailable")
    assert '"build"' in deploy.message and '"tag"' in deploy.message
    assert result.decision.phase == SUCCEEDED


def test_without_w3_a_skipped_prerequisite_would_skip_its_dependent():
    """D3 still holds for other skips: the contrast W3 makes."""
    plan = plan_of([step("a"), step("b"), step("c")])
    result = simulate(plan, fails={"a"})
    assert result.phase("c") == SKIPPED and result.states["c"].reason in ("WorkflowFailed",
                                                                          "PrerequisiteSkipped")


# --- O3: outputs reach a consumer as values, only from finished prerequisites ----------------

def test_outputs_are_read_only_from_finished_prerequisites():
    from stepflow.outputs import output_env

    plan = plan_of([step("build", outputs=["tag"]), step("deploy", env=[reads("TAG", "build", "tag")])])
    result = simulate(plan, outputs={"build": {"tag": "v1"}})
    when, _, before = next(s for s in result.starts if s[1] == "deploy")
    assert before["build"].phase == SUCCEEDED and before["build"].finished_at <= when
    assert output_env(plan, plan.step_by_name["deploy"], before) == {"TAG": "v1"}


# --- X1-X4: finally steps ------------------------------------------------------------------

def test_finally_steps_wait_for_every_main_step_then_run():
    plan = with_finally([step("a"), step("b", depends_on=[])], [step("notify")])
    result = simulate(plan, durations={"a": 1.0, "b": 5.0})
    assert result.intervals["notify"].start >= result.intervals["b"].end
    assert result.decision.phase == SUCCEEDED
    waiting = decide(plan, {}, now=0.0, started_at=0.0).waiting
    assert waiting["notify"].reason == WAITING_FOR_MAIN


def test_finally_runs_after_a_failure_and_the_workflow_still_fails_naming_both():
    plan = with_finally([step("a"), step("b")], [step("cleanup"), step("report")])
    result = simulate(plan, fails={"a", "report"})
    assert result.phase("b") == SKIPPED
    assert result.phase("cleanup") == SUCCEEDED
    assert result.decision.phase == FAILED
    assert '"a"' in result.decision.message and '"report"' in result.decision.message


def test_finally_runs_after_fail_fast_and_timeout():
    plan = with_finally([step("a", parallel=True), step("b", parallel=True)], [step("notify")],
                        failurePolicy="FailFast")
    result = simulate(plan, durations={"a": 1.0, "b": 10.0}, fails={"a"})
    assert result.states["b"].reason == "FailFast" and result.phase("notify") == SUCCEEDED
    timed = with_finally([step("slow")], [step("notify")], timeoutSeconds=5)
    result = simulate(timed, durations={"slow": 100.0, "notify": 50.0})
    assert result.states["slow"].reason == "Timeout"
    # X3: the workflow's timeout covers the main steps only; notify runs its 50 s to the end.
    assert result.phase("notify") == SUCCEEDED and result.decision.reason == "Timeout"


def test_a_finally_step_runs_unless_its_own_finally_prerequisite_failed():
    plan = with_finally([step("a")], [step("x"), step("y"), step("z", depends_on=[])],
                        failurePolicy="FailFast")
    result = simulate(plan, durations={"z": 5.0}, fails={"x"})
    assert result.states["y"].reason == "PrerequisiteFailed"
    # Continue inside finally, whatever failurePolicy says: z runs on after x failed at t=1.
    assert result.phase("z") == SUCCEEDED and result.intervals["z"].end >= result.intervals["x"].end


def test_a_failed_finally_step_fails_a_workflow_whose_main_steps_succeeded():
    plan = with_finally([step("a")], [step("cleanup")])
    result = simulate(plan, fails={"cleanup"})
    assert result.phase("a") == SUCCEEDED
    assert result.decision.phase == FAILED
    assert result.decision.message.startswith("main steps succeeded; finally: ")
    assert '"cleanup"' in result.decision.message


def test_finally_respects_suspend_and_the_cap():
    plan = with_finally([step("a")], [step("f1", parallel=True), step("f2", parallel=True)],
                        maxConcurrency=1)
    result = simulate(plan)
    assert result.max_running == 1 and result.decision.phase == SUCCEEDED
    states = simulate(plan_of([step("a")])).states
    decision = decide(plan, {"a": states["a"]}, now=10.0, started_at=0.0, suspended=True)
    assert decision.start == () and decision.waiting["f1"].reason == "Suspended"


def test_a_finally_condition_reads_workflow_failed_and_main_outputs():
    plan = with_finally([step("build", outputs=["tag"])],
                        [step("alert", when="workflow.failed"),
                         step("announce", when="!workflow.failed", env=[reads("TAG", "build", "tag")])])
    ok = simulate(plan, outputs={"build": {"tag": "v2"}})
    assert ok.phase("alert") == SKIPPED and ok.phase("announce") == SUCCEEDED
    bad = simulate(plan, fails={"build"})
    assert bad.phase("alert") == SUCCEEDED and bad.phase("announce") == SKIPPED


def test_finally_runs_after_an_interruption_and_a_second_stop_ends_it():
    from stepflow.engine import Verdict

    plan = with_finally([step("a")], [step("notify")])
    stop = Verdict("Interrupted", "interrupted by the user")
    decision = decide(plan, {}, now=0.0, started_at=0.0, stop=stop)
    assert decision.skip["a"].reason == "Interrupted" and "notify" not in decision.skip
    from stepflow.engine import apply_skips

    states = apply_skips({}, decision, 0.0)
    assert decide(plan, states, now=0.0, started_at=0.0, stop=stop).start == ("notify",)
    stopped = decide(plan, states, now=0.0, started_at=0.0, stop=stop, stop_finally=stop)
    assert stopped.skip["notify"].reason == "Interrupted"


def test_a_condition_waits_until_every_prerequisite_is_over():
    # W1: evaluated once the prerequisites are satisfied, not while one still runs, so it
    # reads final values; b is still running when a finishes.
    plan = plan_of([step("a", parallel=True), step("b", parallel=True),
                    step("c", depends_on=["a", "b"], when="steps.b.phase == 'Succeeded'")])
    running_b = {"a": StepState(phase=SUCCEEDED), "b": StepState(phase=RUNNING)}
    early = decide(plan, running_b, now=1.0, started_at=0.0)
    assert "c" not in early.skip and "c" not in early.start
    assert early.waiting["c"].reason == "WaitingForPrerequisites"
    later = decide(plan, {**running_b, "b": StepState(phase=SUCCEEDED)}, now=2.0, started_at=0.0)
    assert later.start == ("c",)


# --- reading an output that may be missing: has() and a default ---------------------------------

def test_has_tells_a_finally_step_whether_a_failed_step_wrote_its_output():
    """A producer that did not succeed has no outputs: has() is false there, and a condition it
    guards is evaluated, not skipped OutputUnavailable."""
    guarded = "has(steps.build.outputs.tag) && steps.build.outputs.tag != ''"
    plan = with_finally([step("build", outputs=["tag"])],
                        [step("released", when=guarded),
                         step("nothing-built", when="!has(steps.build.outputs.tag)")])
    bad = simulate(plan, fails={"build"})
    assert (bad.states["released"].phase, bad.states["released"].reason) == (SKIPPED, "ConditionFalse")
    assert bad.phase("nothing-built") == SUCCEEDED
    ok = simulate(plan, outputs={"build": {"tag": "v1"}})
    assert ok.phase("released") == SUCCEEDED and ok.phase("nothing-built") == SKIPPED


def test_an_unguarded_read_of_a_missing_output_still_skips_output_unavailable():
    plan = plan_of([step("build", outputs=["tag"], when="false"),
                    step("deploy", when="steps.build.outputs.tag == 'v1'")])
    deploy = simulate(plan).states["deploy"]
    assert (deploy.phase, deploy.reason) == (SKIPPED, "OutputUnavailable") and '"tag"' in deploy.message


def test_a_read_with_a_default_runs_with_the_default_when_the_producer_did_not_succeed():
    from stepflow.outputs import output_env

    with_default = {"name": "TAG", "valueFrom": {"stepOutput": {"step": "build", "output": "tag",
                                                                "default": "none"}}}
    plan = with_finally([step("build", outputs=["tag"])], [step("notify", env=[with_default])])
    bad = simulate(plan, fails={"build"})
    assert bad.phase("notify") == SUCCEEDED
    assert output_env(plan, plan.step_by_name["notify"], bad.states) == {"TAG": "none"}
    ok = simulate(plan, outputs={"build": {"tag": "v1"}})
    assert output_env(plan, plan.step_by_name["notify"], ok.states) == {"TAG": "v1"}
