"""What makes the rules fast without changing them: the observed states indexed per part
(main steps, finally steps), kept up to date as states change, and the lazy views of
``Decision.waiting`` that work out a waiting step's verdict only when asked for.

A decision then costs what changed and what is ready, not the size of the workflow. All of it
is derived data: the rules answer exactly as they would for a plain dict of the same states,
which the property tests check.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping

from stepflow.engine.states import (
    PENDING,
    PENDING_STATE,
    RUNNING,
    TERMINAL,
    WAITING_FOR_PREREQUISITES,
    StepState,
    Verdict,
    is_bad,
    succeeded_for_scheduling,
)
from stepflow.plan import Plan


class PartStates(MutableMapping[str, StepState]):
    """One part's observed states (the main steps, or the finally steps), with the indexes
    :func:`decide` reads kept up to date as states change, so that a decision costs what
    changed and what is ready, not the size of the workflow."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self._states: dict[str, StepState] = {s.name: PENDING_STATE for s in plan.steps}
        self._by_phase: dict[str, set[str]] = {phase: set() for phase in (*TERMINAL, RUNNING, PENDING)}
        self._by_phase[PENDING].update(self._states)
        groups = plan.groups
        self._group_terminal = [0] * len(groups)
        self._group_bad = [0] * len(groups)
        # Pending steps whose fate may change now: nothing to wait for, or a prerequisite ended.
        self.candidates: set[str] = {s.name for s in plan.steps if not plan.prerequisites(s.name)}

    def __getitem__(self, name: str) -> StepState:
        return self._states[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __delitem__(self, name: str) -> None:
        self[name] = PENDING_STATE

    def __setitem__(self, name: str, state: StepState) -> None:
        old = self._states[name]
        self._states[name] = state
        if old.phase != state.phase:
            self._by_phase.setdefault(old.phase, set()).discard(name)
            self._by_phase.setdefault(state.phase, set()).add(name)
            if state.phase == PENDING:
                self.candidates.add(name)  # back to pending (rare): look at it again
            elif old.phase == PENDING:
                self.candidates.discard(name)  # keeps the set as small as what is pending
        was_terminal, is_terminal = old.phase in TERMINAL, state.phase in TERMINAL
        was_bad, now_bad = is_bad(self.plan, name, old), is_bad(self.plan, name, state)
        if was_terminal == is_terminal and was_bad == now_bad:
            return
        group = self.plan.group_of[name]
        self._group_terminal[group] += is_terminal - was_terminal
        self._group_bad[group] += now_bad - was_bad
        if is_terminal:
            self.candidates.update(self.plan.waiting_on_step(name))
            if group + 1 < len(self.plan.groups) and (
                    now_bad or self._group_terminal[group] == len(self.plan.groups[group])):
                self.candidates.update(self.plan.barrier_members(group + 1))

    def with_phase(self, phase: str) -> set[str]:
        return self._by_phase.get(phase, set())

    def count(self, *phases: str) -> int:
        return sum(len(self._by_phase.get(p, ())) for p in phases)

    def group_has_bad(self, group: int) -> bool:
        return self._group_bad[group] > 0


class Observations(MutableMapping[str, StepState]):
    """Every step's observed state, indexed per part (main steps, finally steps), kept across
    decisions by an executor. A plain mapping passed to ``decide`` is indexed on the spot (one
    pass). It is derived data only: ``decide`` answers exactly as it would for a dict of the
    same states, which the property tests check."""

    def __init__(self, plan: Plan, states: Mapping[str, StepState] | None = None):
        self.plan = plan
        main, final = plan.parts
        self.parts = (PartStates(main),) if final is None else (PartStates(main), PartStates(final))
        self._final = frozenset() if final is None else frozenset(s.name for s in final.steps)
        for name, state in (states or {}).items():
            if name in plan.step_by_name:
                self[name] = state

    def _part(self, name: str) -> PartStates:
        return self.parts[1] if name in self._final else self.parts[0]

    def __getitem__(self, name: str) -> StepState:
        return self._part(name)[name]

    def __setitem__(self, name: str, state: StepState) -> None:
        self._part(name)[name] = state

    def __delitem__(self, name: str) -> None:
        self[name] = PENDING_STATE

    def __iter__(self) -> Iterator[str]:
        return (name for part in self.parts for name in part)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)


def indexed(plan: Plan, states: Mapping[str, StepState]) -> Observations:
    if isinstance(states, Observations) and states.plan is plan:
        return states
    return Observations(plan, states)


class Chain(Mapping[str, Verdict]):
    """Two parts' waiting maps read as one."""

    def __init__(self, first: Mapping[str, Verdict], second: Mapping[str, Verdict]):
        self._maps = (first, second)

    def __getitem__(self, name: str) -> Verdict:
        for mapping in self._maps:
            if name in mapping:
                return mapping[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for mapping in self._maps for name in mapping)

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps)

    def __contains__(self, name: object) -> bool:
        return any(name in m for m in self._maps)


class AllWaiting(Mapping[str, Verdict]):
    """Every pending step of a part waits for the same thing (the finally part, for the main)."""

    def __init__(self, part: PartStates, verdict: Verdict):
        self._part, self._verdict = part, verdict

    def __getitem__(self, name: str) -> Verdict:
        if name not in self:
            raise KeyError(name)
        return self._verdict

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._part if n in self._part.with_phase(PENDING))

    def __len__(self) -> int:
        return self._part.count(PENDING)

    def __contains__(self, name: object) -> bool:
        return name in self._part.with_phase(PENDING)


class Waiting(Mapping[str, Verdict]):
    """Why each pending step waits. The steps the pass looked at are listed; every other
    pending step waits for a prerequisite, and its verdict is worked out only when asked for,
    from the observations as they are then (the executors ask at once: a status write asks
    for all of them, a scheduling decision for none)."""

    def __init__(self, plan: Plan, part: PartStates, decided: dict[str, Verdict],
                 leaving: set[str]):
        self._plan, self._part, self._decided, self._leaving = plan, part, decided, leaving

    def _waits(self, name: object) -> bool:
        return name in self._decided or (
            name in self._part.with_phase(PENDING) and name not in self._leaving)

    def __getitem__(self, name: str) -> Verdict:
        if name in self._decided:
            return self._decided[name]
        if not self._waits(name):
            raise KeyError(name)
        upstream = first_unfinished(self._plan, self._part, self._plan.prerequisites(name))
        return Verdict(WAITING_FOR_PREREQUISITES, f'waiting for "{upstream}"')

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._plan.step_by_name if self._waits(n))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return self._waits(name)


def first_unfinished(plan: Plan, observed: Mapping[str, StepState], names: Iterable[str]) -> str | None:
    return next((p for p in names if not succeeded_for_scheduling(plan, p, observed[p])), None)

