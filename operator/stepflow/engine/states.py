"""The engine's vocabulary: step and workflow phases, the reasons it gives, what an executor
observes of a step (:class:`StepState`) and what the engine answers (:class:`Decision`).

Kept apart from the rules so that executors, status writers and the rules share one set of
names, and a reader of the rules finds only rules there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stepflow.plan import Plan

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED = (
    "Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, SKIPPED, CANCELLED})
SUSPENDED = "Suspended"  # a workflow phase only

# Step reasons the engine gives.
WAITING_FOR_SLOT = "WaitingForSlot"
WAITING_FOR_RESOURCES = "WaitingForResources"  # R1: it does not fit in spec.maxResources yet
WAITING_FOR_POOL = "WaitingForPool"  # R2: every slot of its StepPool is held
POOL_NOT_FOUND = "PoolNotFound"  # R2: its StepPool does not exist (yet)
# R3, given by the operator: the step's Job waits for Kueue to admit it. The engine sees the
# step as running, so it counts against every cap from its Job's creation; status shows Pending.
WAITING_FOR_ADMISSION = "WaitingForAdmission"
WAITING_FOR_PREREQUISITES = "WaitingForPrerequisites"
PREREQUISITE_FAILED = "PrerequisiteFailed"
PREREQUISITE_SKIPPED = "PrerequisiteSkipped"
WORKFLOW_FAILED = "WorkflowFailed"
FAIL_FAST = "FailFast"
TIMEOUT = "Timeout"
CONDITION_FALSE = "ConditionFalse"  # W1: skipped, and counts as succeeded for scheduling (W3)
CONDITION_ERROR = "ConditionError"  # W2: the condition failed to evaluate; the step fails
OUTPUT_UNAVAILABLE = "OutputUnavailable"  # W3: it reads an output its producer never made
MATRIX_EMPTY = "MatrixEmpty"  # M4: a list from an output was empty; counts as succeeded (as W3)
MATRIX_INVALID = "MatrixInvalid"  # M4: that output is not a JSON array of strings, or too long
SUCCESS_SKIPS = (CONDITION_FALSE, MATRIX_EMPTY)  # skips that count as succeeded for scheduling
DATA_SKIPS = (*SUCCESS_SKIPS, OUTPUT_UNAVAILABLE)  # skips that do not fail the workflow
WAITING_FOR_MAIN = "WaitingForMainSteps"  # X1: a finally step before the main steps are over
# Executor-given reasons of O2, for a step that exited 0.
MISSING_OUTPUT = "MissingOutput"
OUTPUTS_TOO_LARGE = "OutputsTooLarge"
INVALID_OUTPUT = "InvalidOutput"  # a value no environment variable can carry (a NUL byte)


@dataclass(frozen=True)
class StepState:
    """What an executor observed about one step. Times are seconds since the epoch."""

    phase: str = PENDING
    reason: str = ""
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    exit_code: int | None = None
    termination_message: str = ""
    job_name: str = ""
    outputs: Mapping[str, str] = field(default_factory=dict)  # O2: a succeeded step's declared outputs


@dataclass(frozen=True)
class Verdict:
    """A reason and a human message, attached to a skip, cancel or wait."""

    reason: str
    message: str
    # M5: the outputs a step skipped MatrixEmpty still has: each an empty JSON array
    outputs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Decision:
    """What the executor should do now, and how the workflow stands."""

    start: tuple[str, ...]
    skip: Mapping[str, Verdict]
    fail: Mapping[str, Verdict]  # failed without running: ConditionError (W2)
    cancel: Mapping[str, Verdict]
    waiting: Mapping[str, Verdict]
    phase: str
    reason: str
    message: str
    done: int
    total: int
    wake_at: float | None = None
    # M4: the matrix steps whose lists from outputs were read now, with their copies' values
    expand: Mapping[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase in (SUCCEEDED, FAILED)

    @property
    def progress(self) -> str:
        return f"{self.done}/{self.total}"


def succeeded_for_scheduling(plan: Plan, name: str, state: StepState) -> bool:
    """F4/D3/W3: success, a failure the step declared harmless with continueOnError, or a skip
    by its own condition."""
    if state.phase == SUCCEEDED:
        return True
    if state.phase == SKIPPED:
        return state.reason in SUCCESS_SKIPS
    return state.phase == FAILED and plan.step_by_name[name].continue_on_error


def has_outputs(state: StepState) -> bool:
    """O3, M5: a step whose outputs can be read: it succeeded, or its list was empty (M4), which
    leaves each output an empty JSON array."""
    return state.phase == SUCCEEDED or (state.phase == SKIPPED and state.reason == MATRIX_EMPTY)


def is_bad(plan: Plan, name: str, state: StepState) -> bool:
    """A terminal outcome that blocks whatever waits on this step."""
    return state.phase in TERMINAL and not succeeded_for_scheduling(plan, name, state)


PENDING_STATE = StepState()  # what a step is before anything was observed of it
