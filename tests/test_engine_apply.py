"""The one loop that carries a decision out, for every executor."""

from __future__ import annotations

from builders import plan_of
from stepflow.engine import CANCELLED, RUNNING, SKIPPED, StepState, Verdict, apply_decision, cancelled, decide


class Steps:
    """An executor that records the order of what it is asked to do."""

    def __init__(self, record_stops: bool):
        self.calls: list[tuple[str, str]] = []
        self.record_stops = record_stops

    def start(self, name: str, now: float) -> StepState:
        self.calls.append(("start", name))
        return StepState(phase=RUNNING, started_at=now)

    def stop(self, name: str, verdict: Verdict, now: float) -> StepState | None:
        self.calls.append(("stop", name))
        return cancelled(StepState(phase=RUNNING), verdict, now) if self.record_stops else None

    def recorded(self, name: str, state: StepState) -> None:
        self.calls.append((state.phase, name))


def test_skips_are_recorded_before_anything_starts():
    plan = plan_of("s a, s b, s c", failurePolicy="StopAfterGroup")
    states = {"a": StepState(phase="Failed", finished_at=1.0)}
    executor = Steps(record_stops=True)
    decision = decide(plan, states, now=2.0, started_at=0.0)
    apply_decision(states, decision, 2.0, executor)
    assert executor.calls == [(SKIPPED, "b"), (SKIPPED, "c")]
    assert states["b"].phase == states["c"].phase == SKIPPED and states["b"].finished_at == 2.0


def test_cancels_come_before_starts_and_an_executor_may_record_a_stop_itself():
    plan = plan_of("p a, p b", failurePolicy="FailFast")
    states = {"a": StepState(phase="Failed", finished_at=1.0), "b": StepState(phase=RUNNING, started_at=0.5)}
    decision = decide(plan, states, now=2.0, started_at=0.0)
    later = dict(states)
    apply_decision(later, decision, 2.0, Steps(record_stops=False))
    assert later["b"].phase == RUNNING  # stopped, recorded by the executor once it has stopped
    apply_decision(states, decision, 2.0, Steps(record_stops=True))
    assert states["b"].phase == CANCELLED and states["b"].reason == "FailFast"


def test_started_steps_take_the_state_the_executor_returns():
    plan = plan_of("p a, p b")
    states: dict[str, StepState] = {}
    executor = Steps(record_stops=True)
    apply_decision(states, decide(plan, states, now=0.0, started_at=0.0), 0.0, executor)
    assert executor.calls == [("start", "a"), ("start", "b")]
    assert {n: s.phase for n, s in states.items()} == {"a": RUNNING, "b": RUNNING}
