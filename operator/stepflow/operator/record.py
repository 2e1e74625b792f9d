"""Record: the status write, then the Events and metrics that describe what changed.

The last stage of a reconcile. The status is written as a merge patch of what changed, and
Events are posted only after the patch they describe succeeded, so a retried reconcile does not
post them twice. Starts and successes are routine: gathered per workflow, they keep a step
within DESIGN.md's budget of three API writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.engine import (
    CANCELLED,
    CONDITION_FALSE,
    FAILED,
    PENDING,
    POOL_NOT_FOUND,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    Decision,
    StepState,
)
from stepflow.operator import metrics
from stepflow.operator.api import Api
from stepflow.operator.observe import POD_TROUBLE
from stepflow.operator.runs import Run
from stepflow.operator.runtime.api import NotFound
from stepflow.operator.runtime.events import EventRecorder
from stepflow.operator.store import Key, Store
from stepflow.plan import Plan
from stepflow.status import waiting_for_types_status

FINISHED = (SUCCEEDED, FAILED)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning ``old`` into ``new``: only what changed, nulls for removals."""
    patch: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch


class Recorder:
    def __init__(self, api: Api, store: Store, events: EventRecorder):
        self.api, self.store, self.events = api, store, events

    def write_status(self, key: Key, body: Mapping[str, Any], old: Mapping[str, Any],
                      new: Mapping[str, Any]) -> bool:
        """Patch what changed; True if the spec changed meanwhile and needs another reconcile.

        The patch's answer becomes the cached object. If it already carries a newer spec, the
        watch event of that spec change arrives older than the cache and is dropped, so this
        is the only place that can notice it.
        """
        patch = merge_patch(old, new)
        # The duration moves with the clock; writing it alone would make every write trigger
        # a watch event, a reconcile and another write. It rides along with real changes.
        if set(patch) <= {"duration"}:
            return False
        try:
            updated = self.api.patch_status(key[0], key[1], patch)
        except NotFound:  # deleted meanwhile: the status of our own object cannot 404 otherwise
            self.store.drop_workflow(key, body["metadata"].get("uid", ""))
            raise
        self.store.put_workflow(updated)
        return updated["metadata"].get("generation") != body["metadata"].get("generation")

    def waiting_for_types(self, key: Key, body: Mapping[str, Any], message: str, now: float) -> None:
        """T4: Pending, reason StepTypeNotFound, with a Warning Event when that news is new."""
        old = body.get("status") or {}
        generation = body["metadata"].get("generation")
        if old.get("reason") == "StepTypeNotFound" and old.get("message") == message \
                and old.get("observedGeneration") == generation:
            return
        new = waiting_for_types_status(message, now=now, observed_generation=generation, previous=old)
        self.write_status(key, body, old, new)
        self.events.record(body, "Warning", "StepTypeNotFound", message)

    def announce(self, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                 states: Mapping[str, StepState], decision: Decision, run: Run,
                 old_status: Mapping[str, Any]) -> None:
        """Events and metrics for what this reconcile changed, once its status is written."""
        if run.is_new and old_status.get("phase") in (PENDING, RUNNING, "Suspended") and (
                old_status.get("runGeneration") is not None):
            self.events.record(body, "Warning", "RunReplaced", (
                f"the spec changed while run {old_status['runGeneration']} was in progress; "
                f"its running Jobs are stopped and run {run.generation} starts"))
        self._record_transitions(body, plan, before, states, run.started_at)
        self._announce_expansions(body, plan, before)
        if plan.pools:
            self._announce_missing_pools(body, plan, before, decision)
        was_finished = old_status.get("phase") in FINISHED and not run.is_new
        if decision.finished and not was_finished:
            kind = "Normal" if decision.phase == SUCCEEDED else "Warning"
            self.events.record(body, kind, f"Workflow{decision.phase}", decision.message, closing=True)

    def _announce_expansions(self, body: Mapping[str, Any], plan: Plan,
                             before: Mapping[str, StepState]) -> None:
        """M6: one Event per matrix step expanded, not one per copy (their starts are routine)."""
        for name, (step, copies) in plan.matrices.items():
            if copies[0] in before:
                continue  # recorded by an earlier reconcile
            over = ", ".join(f"{a.name} (output {a.source[1]!r} of step {a.source[0]!r})" if a.source
                              else f"{a.name} ({len(a.values or ())})" for a in step.matrix)
            self.events.record(body, "Normal", "MatrixExpanded", (
                f'step "{name}" fans out into {len(copies)} copies, "{copies[0]}" to "{copies[-1]}", '
                f"over {over}"))
            metrics.MATRIX_COPIES.observe(len(copies))

    def _announce_missing_pools(self, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                                decision: Decision) -> None:
        """R2: a Warning Event per missing StepPool when steps start waiting for it; GitOps may
        create the pool later, and then they start."""
        for pool, names in plan.pool_steps.items():
            new = [n for n in names if before.get(n, StepState()).reason != POOL_NOT_FOUND
                   and getattr(decision.waiting.get(n), "reason", "") == POOL_NOT_FOUND]
            if new:
                steps, many = ", ".join(f'"{n}"' for n in new), len(new) > 1
                self.events.record(body, "Warning", POOL_NOT_FOUND, (
                    f"step{'s' if many else ''} {steps} {'wait' if many else 'waits'} for StepPool "
                    f"\"{pool}\", which does not exist in namespace {body['metadata']['namespace']}; "
                    f"{'they start' if many else 'it starts'} once it does"))

    def _record_transitions(self, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                            states: Mapping[str, StepState], run_started: float) -> None:
        for step in plan.steps:
            earlier = before.get(step.name, StepState())
            old = earlier.phase
            state = states[step.name]
            named = f'"{step.name}"' + (f" ({step.type})" if step.type else "")
            label = f"step {named}"
            if state.phase == RUNNING and state.reason in POD_TROUBLE and state.reason != earlier.reason:
                self.events.record(body, "Warning", state.reason, f"{label}: {state.message}")
            if state.phase == old:
                continue
            if old == PENDING and state.phase in (RUNNING, SUCCEEDED, FAILED) and state.started_at:
                # Starts and successes are routine: gathered per workflow, they keep a step
                # within DESIGN.md's budget of three writes (the Job name is in status).
                self.events.record_routine(body, "StepStarted", named, "started")
                self._observe_wait(plan, step.name, states, run_started)
            if state.phase == SUCCEEDED:
                self.events.record_routine(body, "StepSucceeded", named, "succeeded")
            elif state.phase == SKIPPED and state.reason == CONDITION_FALSE:
                # W1: a decision the user wrote, so describe shows it; D3 skips follow from an
                # event already recorded (the failure), so they get none.
                self.events.record(body, "Normal", "StepSkipped", f"{label} skipped: {state.message}")
            elif state.phase in (FAILED, CANCELLED):
                detail = f"exit code {state.exit_code}: " if state.exit_code not in (None, 0) else ""
                text = f"{label} {state.phase.lower()}: {detail}{state.reason} {state.message}"
                self.events.record(body, "Warning", f"Step{state.phase}", text.strip())
            if state.phase in (SUCCEEDED, FAILED, CANCELLED) and state.started_at and state.finished_at:
                metrics.STEP_DURATION.labels(type=step.type or "none", outcome=state.phase).observe(
                    max(state.finished_at - state.started_at, 0.0))

    def _observe_wait(self, plan: Plan, name: str, states: Mapping[str, StepState],
                      run_started: float) -> None:
        """Time between a step's prerequisites being met and its start: the cost of the caps.

        A step with no prerequisites (first group, ``dependsOn: []``) was ready when the run began.
        """
        state = states[name]
        ends = [states[p].finished_at for p in plan.prerequisites(name)]
        ready = max((e for e in ends if e is not None), default=run_started)
        if ready is not None and state.started_at is not None:
            metrics.STEP_WAIT.observe(max(state.started_at - ready, 0.0))
