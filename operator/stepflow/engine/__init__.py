"""The pure engine: the scheduling rules and what they need, with no I/O and no clock.

- :mod:`~stepflow.engine.states`: phases, reasons, :class:`StepState` and :class:`Decision`;
- :mod:`~stepflow.engine.rules`: :func:`decide`, every rule that decides a step's fate;
- :mod:`~stepflow.engine.admission`: which ready steps the caps let start (C1, C2, R1, R2);
- :mod:`~stepflow.engine.queues`: the cross-workflow queues behind C2 and R2;
- :mod:`~stepflow.engine.observations`: the indexes and lazy views that make a decision cheap;
- :mod:`~stepflow.engine.fan_out`: a matrix step seen whole, and a list read from an output (M3-M5);
- :mod:`~stepflow.engine.apply`: the one loop that carries a decision out, for every executor.

Executors import from here.
"""

from stepflow.engine.admission import Caps, Queues
from stepflow.engine.apply import (
    Executor,
    apply_decision,
    apply_skips,
    cancelled,
    failed_unstarted,
    record_skips,
    skipped,
)
from stepflow.engine.fan_out import state_of, whole_state
from stepflow.engine.observations import Observations
from stepflow.engine.queues import PoolQueue, SlotQueue
from stepflow.engine.rules import decide, step_view
from stepflow.engine.states import (
    CANCELLED,
    CONDITION_FALSE,
    FAILED,
    INVALID_OUTPUT,
    MATRIX_EMPTY,
    MATRIX_INVALID,
    MISSING_OUTPUT,
    OUTPUTS_TOO_LARGE,
    PENDING,
    PENDING_STATE,
    POOL_NOT_FOUND,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    SUSPENDED,
    TERMINAL,
    WAITING_FOR_ADMISSION,
    WAITING_FOR_MAIN,
    WAITING_FOR_POOL,
    WAITING_FOR_RESOURCES,
    WAITING_FOR_SLOT,
    Decision,
    StepState,
    Verdict,
    is_bad,
    succeeded_for_scheduling,
)

__all__ = [
    "CANCELLED",
    "CONDITION_FALSE",
    "FAILED",
    "INVALID_OUTPUT",
    "MATRIX_EMPTY",
    "MATRIX_INVALID",
    "MISSING_OUTPUT",
    "OUTPUTS_TOO_LARGE",
    "PENDING",
    "PENDING_STATE",
    "POOL_NOT_FOUND",
    "RUNNING",
    "SKIPPED",
    "SUCCEEDED",
    "SUSPENDED",
    "TERMINAL",
    "WAITING_FOR_ADMISSION",
    "WAITING_FOR_MAIN",
    "WAITING_FOR_POOL",
    "WAITING_FOR_RESOURCES",
    "WAITING_FOR_SLOT",
    "Caps",
    "Decision",
    "Executor",
    "Observations",
    "PoolQueue",
    "Queues",
    "SlotQueue",
    "StepState",
    "Verdict",
    "apply_decision",
    "apply_skips",
    "cancelled",
    "decide",
    "failed_unstarted",
    "is_bad",
    "record_skips",
    "skipped",
    "state_of",
    "step_view",
    "succeeded_for_scheduling",
    "whole_state",
]
