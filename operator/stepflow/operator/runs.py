"""Which run of a Workflow a reconcile continues or starts, and what a new run keeps.

A Workflow runs once per spec generation (DESIGN.md, Runs and changes): the generation that
started the run and a hash of the run-defining spec are recorded in status, so a change to
``suspend`` or ``maxConcurrency`` alone never starts a new run, and ``stepflow rerun --failed``
starts one that keeps the previous run's successes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from stepflow.engine import SUCCEEDED, StepState
from stepflow.operator.jobs import legacy_spec_hash, spec_hash
from stepflow.plan import Plan
from stepflow.spec import RERUN_FAILED_ANNOTATION
from stepflow.status import parse_time, states_from_status


@dataclass(frozen=True)
class Run:
    """Which run of the workflow this reconcile continues (or starts)."""

    generation: int
    spec_hash: str
    is_new: bool
    started_at: float
    finished_at: float | None


def carried_over(body: Mapping[str, Any], run: Run) -> dict[str, StepState]:
    """``stepflow rerun --failed``: a new run that keeps the previous run's successes.

    The CLI sets a new ``spec.runToken`` and names that same token in an
    annotation; only a run started by that very token keeps anything.
    """
    annotations = body["metadata"].get("annotations") or {}
    token = (body.get("spec") or {}).get("runToken")
    if not run.is_new or not token or annotations.get(RERUN_FAILED_ANNOTATION) != token:
        return {}
    entries = (body.get("status") or {}).get("steps") or {}
    previous = states_from_status(body.get("status"))
    # A matrix step's own entry sums up its copies (M2); each copy is kept, or not, on its own.
    return {name: replace(state, message="kept from the previous run")
            for name, state in previous.items() if state.phase == SUCCEEDED and "copies" not in entries[name]}


def current_run(body: Mapping[str, Any], now: float) -> Run:
    """A new run starts when the run-defining spec changed; suspend/maxConcurrency never start one."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    fingerprint = spec_hash(spec)
    generation = body["metadata"].get("generation") or 1
    recorded = status.get("specHash")
    same = recorded == fingerprint or (recorded is not None and recorded == legacy_spec_hash(spec))
    if not same or status.get("runGeneration") is None:
        return Run(generation, fingerprint, True, now, None)
    return Run(status["runGeneration"], fingerprint, False,
               parse_time(status.get("startedAt")) or now, parse_time(status.get("finishedAt")))


def not_before_prerequisites(plan: Plan, states: dict[str, StepState],
                             adopted: Collection[str]) -> dict[str, StepState]:
    """Start times of Jobs adopted after a restart, made consistent with the run's order.

    The operator that created such a Job may have died before recording the
    step's millisecond start, and a Job's startTime has whole seconds. The Job
    was created only once its prerequisites had ended, so its start is moved
    up to the latest of their ends; otherwise the status (and the timeline)
    would show a step starting before a step it waits for had finished.
    """
    for name in plan.topological_order:
        state = states.get(name)
        if name not in adopted or state is None or state.started_at is None:
            continue
        ends = [states[p].finished_at for p in plan.prerequisites(name)
                if p in states and states[p].finished_at is not None]
        if ends and max(ends) > state.started_at:
            start = max(ends)
            finished = None if state.finished_at is None else max(state.finished_at, start)
            states[name] = replace(state, started_at=start, finished_at=finished)
    return states


def started_with_adopted(run: Run, states: Mapping[str, StepState], adopted: Collection[str]) -> Run:
    """A new run whose first status write was lost began no later than the Jobs it adopts."""
    starts = [states[n].started_at for n in adopted if states[n].started_at is not None]
    return replace(run, started_at=min(starts)) if starts and min(starts) < run.started_at else run


def previous_states(body: Mapping[str, Any], run: Run) -> dict[str, StepState]:
    """The steps' states as the last status recorded them; for a new run, what it keeps."""
    return carried_over(body, run) if run.is_new else states_from_status(body.get("status") or {})
