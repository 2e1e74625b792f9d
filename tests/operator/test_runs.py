"""Run identity (which run a reconcile continues or starts) and adopted Jobs' times."""

from __future__ import annotations

from builders import plan_of
from stepflow.engine import StepState
from stepflow.operator.runs import carried_over, current_run, not_before_prerequisites
from stepflow.spec import RERUN_FAILED_ANNOTATION


def _body(generation, spec, status=None):
    return {"metadata": {"generation": generation}, "spec": spec, "status": status or {}}


def test_first_reconcile_starts_a_run_for_the_current_generation():
    run = current_run(_body(1, {"steps": []}), now=10.0)
    assert run.is_new and run.generation == 1 and run.started_at == 10.0


def test_suspend_or_max_concurrency_changes_continue_the_same_run():
    spec = {"steps": [{"name": "a"}], "maxConcurrency": 1}
    first = current_run(_body(1, spec), now=1.0)
    status = {"specHash": first.spec_hash, "runGeneration": 1, "startedAt": "2026-01-01T00:00:00.000Z"}
    again = current_run(_body(2, {**spec, "maxConcurrency": 4, "suspend": True}, status), now=5.0)
    assert not again.is_new and again.generation == 1


def test_a_changed_spec_starts_a_new_run_named_after_the_new_generation():
    spec = {"steps": [{"name": "a"}]}
    first = current_run(_body(1, spec), now=1.0)
    status = {"specHash": first.spec_hash, "runGeneration": 1, "phase": "Succeeded"}
    changed = current_run(_body(3, {"steps": [{"name": "b"}]}, status), now=5.0)
    assert changed.is_new and changed.generation == 3


def test_a_run_recorded_by_an_earlier_release_is_the_same_run_after_an_upgrade():
    from stepflow.operator.jobs import legacy_spec_hash

    spec = {"steps": [{"name": "a", "env": [{"name": "B"}, {"name": "A"}]}]}
    status = {"specHash": legacy_spec_hash(spec), "runGeneration": 1, "phase": "Succeeded"}
    assert not current_run(_body(1, spec, status), now=5.0).is_new


def test_reordered_env_or_depends_on_and_written_out_defaults_continue_the_run():
    """The CRD's CEL sees these as no change and lets them through mid-run (list-type map and
    set compare without order); a new CRD version's defaults appear on read."""
    spec = {"steps": [{"name": "a"}, {"name": "b", "dependsOn": ["a", "x"],
                                      "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
            "defaults": {"env": [{"name": "C"}, {"name": "D"}]}}
    first = current_run(_body(1, spec), now=1.0)
    status = {"specHash": first.spec_hash, "runGeneration": 1, "phase": "Running"}
    same = {"failurePolicy": "StopAfterGroup",
            "steps": [{"name": "a", "retries": 0, "continueOnError": False},
                      {"name": "b", "dependsOn": ["x", "a"],
                       "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}],
            "defaults": {"env": [{"name": "D"}, {"name": "C"}]}}
    assert not current_run(_body(2, same, status), now=5.0).is_new
    reordered_steps = {**spec, "steps": list(reversed(spec["steps"]))}  # the plan itself changed
    assert current_run(_body(2, reordered_steps, status), now=5.0).is_new


def test_an_adopted_job_never_starts_before_its_prerequisites_ended():
    # a and b ran in parallel; c's Job was created after both, by an operator that died before
    # recording it, so all the restarted one knows is the Job's whole-second startTime.
    plan = plan_of("p a, p b, s c, s d")
    states = {
        "a": StepState(phase="Succeeded", started_at=3.9, finished_at=4.104),
        "b": StepState(phase="Succeeded", started_at=3.9, finished_at=5.0),
        "c": StepState(phase="Succeeded", started_at=4.0, finished_at=4.5),
        "d": StepState(phase="Running", started_at=4.0),
    }
    fixed = not_before_prerequisites(plan, dict(states), adopted={"c", "d"})
    assert fixed["c"].started_at == 5.0 and fixed["c"].finished_at == 5.0
    assert fixed["d"].started_at == 5.0 and fixed["d"].finished_at is None
    assert fixed["a"] == states["a"] and fixed["b"] == states["b"]
    # A start the operator recorded itself is never moved.
    assert not_before_prerequisites(plan, dict(states), adopted=())["c"] == states["c"]


def test_rerun_failed_keeps_succeeded_copies_but_not_a_matrix_steps_summary():
    body = _body(2, {"runToken": "r2", "steps": []}, {"steps": {
        "build": {"phase": "Succeeded", "copies": 2},
        "build-0": {"phase": "Succeeded", "matrixOf": "build"},
        "build-1": {"phase": "Failed", "matrixOf": "build"}}})
    body["metadata"]["annotations"] = {RERUN_FAILED_ANNOTATION: "r2"}
    kept = carried_over(body, current_run(body, 1_000.0))
    assert set(kept) == {"build-0"}
