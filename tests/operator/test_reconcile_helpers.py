"""The reconcile's pure helpers: status merge patches and run identity."""

from __future__ import annotations

from stepflow.operator.reconcile import current_run, merge_patch


def test_merge_patch_carries_only_changes_and_nulls_removals():
    old = {"phase": "Running", "steps": {"a": {"phase": "Running"}, "b": {"phase": "Pending"}},
           "message": "x"}
    new = {"phase": "Running", "steps": {"a": {"phase": "Succeeded"}, "b": {"phase": "Pending"}}}
    assert merge_patch(old, new) == {"steps": {"a": {"phase": "Succeeded"}}, "message": None}
    assert merge_patch(new, new) == {}


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
