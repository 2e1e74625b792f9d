"""A small deterministic discrete-event executor for the pure engine.

It does what both real executors do (decide, record skips, stop cancelled
steps, start steps, wait), but time is a number that jumps to the next step
completion, ``wake_at`` or scripted event. Every start, finish and decision is
recorded, so tests can assert on what a user would see on a timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from stepflow.engine import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    Decision,
    Observations,
    SlotQueue,
    StepState,
    Verdict,
    apply_decision,
    apply_skips,
    cancelled,
    decide,
)
from stepflow.matrix import expand
from stepflow.plan import Plan

MAX_ROUNDS = 100_000


@dataclass
class Interval:
    start: float
    end: float | None = None


@dataclass
class Result:
    states: dict[str, StepState]
    decision: Decision
    decisions: list[tuple[float, Decision]]
    intervals: dict[str, Interval]
    start_order: list[str]
    max_running: int
    end_time: float
    stuck: bool = False
    # (time, name, states just before the start): for "prerequisites done" checks
    starts: list[tuple[float, str, Mapping[str, StepState]]] = field(default_factory=list)
    plan: Plan | None = None  # as the run ended: with the copies of what it expanded (M4)
    expansions: list[tuple[float, dict[str, tuple[Mapping[str, str], ...]]]] = field(default_factory=list)

    def phase(self, name: str) -> str:
        return self.states[name].phase

    def phases(self) -> dict[str, str]:
        return {n: s.phase for n, s in self.states.items()}


@dataclass
class Sim:
    """Drive one workflow. ``durations`` default to 1.0; ``fails`` lists steps that exit non-zero."""

    plan: Plan
    durations: Mapping[str, float] = field(default_factory=dict)
    fails: frozenset[str] | set[str] = frozenset()
    outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # what a success wrote
    max_concurrency: int | None = None
    suspended: bool = False
    t0: float = 1_000.0
    # scripted outside events: (time, action(sim)); e.g. suspend, resume, interrupt
    events: list[tuple[float, Callable[[Sim], None]]] = field(default_factory=list)
    stop: Verdict | None = None
    # decide twice per round, the second time from a reversed copy of the states: must be equal
    check_determinism: bool = False
    expansions: list[tuple[float, dict[str, tuple[Mapping[str, str], ...]]]] = field(default_factory=list)

    def run(self) -> Result:
        now = self.t0
        states: dict[str, StepState] = {}
        indexed = Observations(self.plan)
        end_at: dict[str, float] = {}
        intervals: dict[str, Interval] = {}
        decisions: list[tuple[float, Decision]] = []
        order: list[str] = []
        starts: list[tuple[float, str, Mapping[str, StepState]]] = []
        events = sorted(self.events, key=lambda e: e[0])
        max_running = 0
        for _ in range(MAX_ROUNDS):
            while events and events[0][0] <= now:
                events.pop(0)[1](self)
            decision = decide(self.plan, states, now=now, started_at=self.t0,
                              max_concurrency=self.max_concurrency, suspended=self.suspended,
                              stop=self.stop)
            if self.check_determinism:
                again = decide(self.plan, dict(reversed(states.items())), now=now, started_at=self.t0,
                               max_concurrency=self.max_concurrency, suspended=self.suspended,
                               stop=self.stop)
                assert again == decision, f"decide is not deterministic at t={now}"
                # The incremental index kept across rounds answers exactly as a fresh dict does.
                for name, state in states.items():
                    if indexed[name] != state:
                        indexed[name] = state
                kept = decide(self.plan, indexed, now=now, started_at=self.t0,
                              max_concurrency=self.max_concurrency, suspended=self.suspended,
                              stop=self.stop)
                assert kept == decision, f"the kept Observations decide differently at t={now}"
            decisions.append((now, decision))
            steps = _SimSteps(self, now, states, end_at, intervals, order, starts)
            apply_decision(states, decision, now, steps)
            if decision.expand:  # M4: the plan now has the copies; the index follows it
                indexed = Observations(self.plan, states)
            max_running = max(max_running, sum(1 for s in states.values() if s.phase == RUNNING))
            if decision.finished:
                return Result(states, decision, decisions, intervals, order, max_running, now,
                              starts=starts, plan=self.plan, expansions=self.expansions)
            if decision.start or decision.skip or decision.cancel or decision.fail or decision.expand:
                continue  # state changed: decide again at the same instant
            candidates = list(end_at.values())
            if decision.wake_at is not None:
                candidates.append(decision.wake_at)
            if events:
                candidates.append(events[0][0])
            if not candidates:
                return Result(states, decision, decisions, intervals, order, max_running, now,
                              stuck=True, starts=starts, plan=self.plan, expansions=self.expansions)
            now = max(now, min(candidates))
            for name in sorted(n for n, t in end_at.items() if t <= now):
                phase = FAILED if name in self.fails else SUCCEEDED
                states[name] = replace(states[name], phase=phase, finished_at=now,
                                       exit_code=1 if phase == FAILED else 0,
                                       reason="Error" if phase == FAILED else "",
                                       outputs={} if phase == FAILED else dict(self.outputs.get(name, {})))
                intervals[name].end = now
                del end_at[name]
        raise AssertionError("simulation did not settle")


@dataclass
class _SimSteps:
    """The simulator as the executor of :func:`apply_decision`: starting and stopping a step
    only moves numbers."""

    sim: Sim
    now: float
    states: Mapping[str, StepState]
    end_at: dict[str, float]
    intervals: dict[str, Interval]
    order: list[str]
    starts: list[tuple[float, str, Mapping[str, StepState]]]

    def start(self, name: str, now: float) -> StepState:
        self.starts.append((now, name, dict(self.states)))
        self.end_at[name] = now + self.sim.durations.get(name, 1.0)
        self.intervals[name] = Interval(now)
        self.order.append(name)
        return StepState(phase=RUNNING, started_at=now, attempts=1)

    def stop(self, name: str, verdict: Verdict, now: float) -> StepState:
        self.intervals[name].end = now
        del self.end_at[name]
        return cancelled(self.states[name], verdict, now)

    def recorded(self, name: str, state: StepState) -> None:
        pass

    def expand(self, expansions: Mapping[str, tuple[Mapping[str, str], ...]], now: float) -> None:
        self.sim.plan = expand(self.sim.plan, expansions)
        self.sim.expansions.append((now, dict(expansions)))


def simulate(plan: Plan, durations: Mapping[str, float] | None = None, fails=(), **kwargs) -> Result:
    return Sim(plan, durations or {}, frozenset(fails), **kwargs).run()


@dataclass
class Arrival:
    """A workflow that reaches the operator at time ``at``."""

    name: str
    plan: Plan
    at: float
    durations: Mapping[str, float] = field(default_factory=dict)


def simulate_fleet(arrivals: list[Arrival], limit: int | None,
                   reconcile_order: Callable[[list[str]], list[str]] = lambda names: names,
                   ) -> dict[str, dict[str, Interval]]:
    """Several workflows under one operator-wide cap (C2), shared through :class:`SlotQueue`.

    Each reconcile decides with the queue answering how many of the steps the
    engine would start may start, as an operator would. ``reconcile_order`` lets
    a test prove the order of reconciles does not matter. Returns each workflow's
    step intervals (times relative to 0).
    """
    queue = SlotQueue(limit)
    states: dict[str, dict[str, StepState]] = {a.name: {} for a in arrivals}
    end_at: dict[tuple[str, str], float] = {}
    intervals: dict[str, dict[str, Interval]] = {a.name: {} for a in arrivals}
    finished: set[str] = set()
    by_name = {a.name: a for a in arrivals}
    now = 0.0
    for _ in range(MAX_ROUNDS):
        changed = False
        present = [a.name for a in arrivals if a.at <= now and a.name not in finished]
        for name in reconcile_order(present):
            arrival = by_name[name]
            wf = states[name]
            decision = decide(arrival.plan, wf, now=now, started_at=arrival.at,
                              queues=_FleetQueue(queue, name))
            wf = apply_skips(wf, decision, now)
            for step_name in decision.start:
                wf[step_name] = StepState(phase=RUNNING, started_at=now)
                end_at[(name, step_name)] = now + arrival.durations.get(step_name, 1.0)
                intervals[name][step_name] = Interval(now)
            queue.started(name, decision.start)
            states[name] = wf
            changed = changed or bool(decision.start or decision.skip)
            if decision.finished:
                finished.add(name)
                queue.forget(name)
        if len(finished) == len(arrivals):
            return intervals
        if changed:
            continue
        candidates = list(end_at.values()) + [a.at for a in arrivals if a.at > now]
        if not candidates:
            raise AssertionError(f"fleet stuck at {now}: {states}")
        now = min(candidates)
        for key in sorted(k for k, t in end_at.items() if t <= now):
            wf_name, step_name = key
            states[wf_name][step_name] = replace(states[wf_name][step_name], phase=SUCCEEDED,
                                                 finished_at=now)
            intervals[wf_name][step_name].end = now
            del end_at[key]
    raise AssertionError("fleet simulation did not settle")


@dataclass
class _FleetQueue:
    """One workflow's view of the fleet's operator-wide queue (C2), as the operator has it."""

    queue: SlotQueue
    workflow: str

    def pool_slots(self, wanted: Sequence[str]) -> Mapping[str, int | None]:
        return {}

    def global_slots(self, wanted: Sequence[str], running: int) -> int | None:
        return self.queue.grant(self.workflow, wanted, running)


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """Most intervals open at one instant; an interval ending at t does not overlap one starting at t."""
    intervals = list(intervals)  # read twice below; a generator would be empty the second time
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda p: (p[0], p[1]))
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best
