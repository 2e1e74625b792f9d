"""Fan-out in the engine (M3-M5): a matrix step seen whole from its copies, and a list read from
an output when its step becomes ready.

Pure, like the rules: the executors record what these say (an expansion, a MatrixInvalid or
MatrixEmpty step), and a restarted operator reads the recorded expansion back (M4).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from stepflow.engine.states import (
    CANCELLED,
    FAILED,
    MATRIX_EMPTY,
    MATRIX_INVALID,
    OUTPUT_UNAVAILABLE,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    StepState,
    Verdict,
    has_outputs,
)
from stepflow.matrix import Values, combinations, list_from_output, values_size
from stepflow.matrix_spec import MAX_COPIES, MAX_EXPANDED_STEPS, MAX_STEP_VALUES
from stepflow.plan import Plan
from stepflow.spec import Step


def state_of(plan: Plan, name: str, states: Mapping[str, StepState]) -> StepState:
    """A step's state as a reader sees it: an expanded matrix step's is its copies' (M3, M5)."""
    if name in plan.matrices:
        return whole_state(plan, name, states)
    return states[name]


def whole_state(plan: Plan, name: str, states: Mapping[str, StepState]) -> StepState:
    """M3: the whole of a matrix step. Running while a copy is unfinished; then Failed if a
    copy failed, Cancelled if one was cancelled, Skipped if one was, else Succeeded. Its outputs
    (M5) are JSON arrays of the copies' values, in copy order, once it succeeded."""
    step, names = plan.matrices[name]
    seen = [states.get(n) or StepState() for n in names]
    phases = [s.phase for s in seen]
    starts = [s.started_at for s in seen if s.started_at is not None]
    ends = [s.finished_at for s in seen if s.finished_at is not None]
    count = {phase: phases.count(phase) for phase in set(phases)}
    total = len(seen)
    if count.get(PENDING, 0) + count.get(RUNNING, 0):
        phase = RUNNING if starts else PENDING
        done = sum(count.get(p, 0) for p in TERMINAL)
        reason, message = "", f"{done} of {total} copies over, {count.get(RUNNING, 0)} running"
        return StepState(phase=phase, reason=reason, message=message, started_at=min(starts, default=None))
    first_failed = next((n for n, s in zip(names, seen, strict=True) if s.phase == FAILED), None)
    if first_failed is not None:
        phase, reason = FAILED, "CopiesFailed"
        message = f'{count[FAILED]} of {total} copies failed, the first "{first_failed}"'
    elif count.get(CANCELLED):
        phase, reason, message = CANCELLED, seen[phases.index(CANCELLED)].reason, f"{count[CANCELLED]} of " \
                                                                                  f"{total} copies cancelled"
    elif count.get(SKIPPED):  # all of them by a condition; or some, the run being stopped
        first = seen[phases.index(SKIPPED)]
        phase, reason = SKIPPED, first.reason
        message = first.message if count[SKIPPED] == total else f"{count[SKIPPED]} of {total} copies " \
                                                                 f"skipped: {first.message}"
    else:
        phase, reason, message = SUCCEEDED, "", f"all {total} copies succeeded"
    outputs = {o: json.dumps([s.outputs.get(o, "") for s in seen]) for o in step.outputs} \
        if phase == SUCCEEDED else {}
    return StepState(phase=phase, reason=reason, message=message, started_at=min(starts, default=None),
                     finished_at=max(ends, default=None), outputs=outputs)


def expansion(plan: Plan, step: Step, states: Mapping[str, StepState]) -> tuple[Values, ...] | Verdict:
    """M4, for a matrix step found ready: its copies' values, from the outputs it reads, or the
    verdict that ends it: MatrixInvalid, MatrixEmpty, or OutputUnavailable (as W3) when the
    producer did not succeed."""
    resolved: dict[str, list[str]] = {}
    for axis in step.matrix:
        if axis.source is None:
            continue
        producer, output = axis.source
        state = state_of(plan, producer, states)
        if not has_outputs(state):
            return Verdict(OUTPUT_UNAVAILABLE, f'step "{producer}" was {state.phase.lower()}, so its output '
                                               f'"{output}" is unavailable to fan out over')
        values = list_from_output(state.outputs.get(output, ""))
        if isinstance(values, str):
            return Verdict(MATRIX_INVALID, f'output "{output}" of step "{producer}" {values}')
        resolved[axis.name] = values
    count = 1
    for axis in step.matrix:
        count *= len(axis.values if axis.values is not None else resolved[axis.name])
    if count == 0:
        empty = next(f'output "{a.source[1]}" of step "{a.source[0]}"' for a in step.matrix
                     if a.source is not None and not resolved[a.name])
        return Verdict(MATRIX_EMPTY, f"{empty} is an empty list: no copy to run",
                       outputs=tuple((o, "[]") for o in step.outputs))
    if count > MAX_COPIES:
        return Verdict(MATRIX_INVALID, f"{_sources(step)} would make {count:,} copies; at most {MAX_COPIES}")
    steps = len(plan.steps) - 1 + count
    if steps > MAX_EXPANDED_STEPS:
        return Verdict(MATRIX_INVALID, (f"{_sources(step)} would bring the workflow to {steps:,} steps; at "
                                        f"most {MAX_EXPANDED_STEPS:,}"))
    combos = tuple(combinations(step.matrix, resolved))
    if values_size(combos) > MAX_STEP_VALUES:
        return Verdict(MATRIX_INVALID, (f"{_sources(step)} would give its copies {values_size(combos):,} "
                                        f"characters of values; at most {MAX_STEP_VALUES:,}"))
    return combos


def _sources(step: Step) -> str:
    return " and ".join(f'output "{a.source[1]}" of step "{a.source[0]}"' for a in step.matrix
                        if a.source is not None)


def unexpanded(step: Step) -> bool:
    """A matrix step still waiting to read its list (M4); one written down is expanded at once."""
    return bool(step.matrix)
