"""Applying a decision: the one loop every executor runs after the engine has decided.

Skips and unstarted failures are recorded, running steps that the decision cancels are stopped,
the steps it starts are started, and the matrix steps it expanded (M4) are handed over, in that
order: the executor replaces its plan then, and the copies start on the next decision. How a
step starts or stops is the executor's (a Job in the operator, a process in ``stepflow run``, a
number in the tests' simulator); the order, and what is recorded, is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import replace
from typing import Protocol

from stepflow.engine.states import CANCELLED, FAILED, PENDING_STATE, SKIPPED, Decision, StepState, Verdict


class Executor(Protocol):
    def start(self, name: str, now: float) -> StepState:
        """Start the step; its state now (Running, or whatever starting it ended in)."""
        ...

    def stop(self, name: str, verdict: Verdict, now: float) -> StepState | None:
        """Stop a running step; the state to record now, or None if the executor records it
        itself once the step has really stopped."""
        ...

    def recorded(self, name: str, state: StepState) -> None:
        """A skip or an unstarted failure was recorded (for live views)."""
        ...

    def expand(self, expansions: Mapping[str, tuple[Mapping[str, str], ...]], now: float) -> None:
        """M4: these matrix steps read their lists; record the copies before any of them starts."""
        ...


def skipped(state: StepState, verdict: Verdict, now: float) -> StepState:
    """A skip as both executors record it."""
    return replace(state, phase=SKIPPED, reason=verdict.reason, message=verdict.message, finished_at=now,
                   outputs=dict(verdict.outputs))


def failed_unstarted(state: StepState, verdict: Verdict, now: float) -> StepState:
    """A step the engine failed without running it (ConditionError), as both executors record it."""
    return replace(state, phase=FAILED, reason=verdict.reason, message=verdict.message, finished_at=now)


def cancelled(state: StepState, verdict: Verdict, now: float) -> StepState:
    """A running step stopped by FailFast, a timeout or an interruption."""
    return replace(state, phase=CANCELLED, reason=verdict.reason, message=verdict.message, finished_at=now)


def record_skips(states: MutableMapping[str, StepState], decision: Decision, now: float,
                 executor: Executor | None = None) -> None:
    """Record the decision's skips and unstarted failures, which need no executor."""
    for name, verdict in decision.skip.items():
        states[name] = skipped(states.get(name, PENDING_STATE), verdict, now)
        if executor is not None:
            executor.recorded(name, states[name])
    for name, verdict in decision.fail.items():
        states[name] = failed_unstarted(states.get(name, PENDING_STATE), verdict, now)
        if executor is not None:
            executor.recorded(name, states[name])


def apply_decision(states: MutableMapping[str, StepState], decision: Decision, now: float,
                   executor: Executor) -> None:
    """Carry out ``decision`` on ``states`` (updated in place) through ``executor``."""
    record_skips(states, decision, now, executor)
    for name, verdict in decision.cancel.items():
        stopped = executor.stop(name, verdict, now)
        if stopped is not None:
            states[name] = stopped
    for name in decision.start:
        states[name] = executor.start(name, now)
    if decision.expand:
        executor.expand(decision.expand, now)


def apply_skips(states: Mapping[str, StepState], decision: Decision, now: float) -> dict[str, StepState]:
    """The states with the decision's skips and unstarted failures recorded, as a new dict."""
    updated = dict(states)
    record_skips(updated, decision, now)
    return updated
