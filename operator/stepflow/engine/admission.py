"""Admission: which of the ready steps may start now (C1, C2, R1, R2; R4 combines them).

The rules (:mod:`stepflow.engine.rules`) say which steps are *ready*; this module says which of
those *start*, in document order, and why the others wait. Its inputs are the caps:
the workflow's ``maxConcurrency`` and ``suspend``, its resource budget (R1), the free slots of
its StepPools (R2) and of the operator-wide cap (C2).

Pool and operator-wide slots are shared across workflows, first come, first served. An executor
that runs many workflows (the operator) hands in :class:`Queues`, which answers for them; it is
asked at most once per decision for pools and once for the operator-wide cap, with the steps
that would start if that cap were not there. An executor that runs one workflow (``stepflow
run``) passes the pools' free slots directly, and no queues.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from stepflow import capacity
from stepflow.engine.observations import PartStates
from stepflow.engine.states import (
    POOL_NOT_FOUND,
    RUNNING,
    SUSPENDED,
    WAITING_FOR_POOL,
    WAITING_FOR_RESOURCES,
    WAITING_FOR_SLOT,
    Verdict,
)
from stepflow.plan import Plan


class Queues(Protocol):
    """The cross-workflow slots an executor keeps (R2 pools, C2 the operator-wide cap)."""

    def pool_slots(self, wanted: Sequence[str]) -> Mapping[str, int | None]:
        """R2: per existing pool, how many of ``wanted`` (in document order) may take one of its
        slots now; a pool that does not exist is absent, None is unlimited."""
        ...

    def global_slots(self, wanted: Sequence[str], running: int) -> int | None:
        """C2: how many of ``wanted`` the operator-wide cap lets start now, given ``running``
        steps of this workflow; None when there is no such cap."""
        ...


@dataclass(frozen=True)
class Caps:
    """The caps' inputs for one decision.

    ``pool_slots`` maps each existing pool to its free slots (None: unlimited); a pool missing
    from it does not exist, and None for the whole mapping leaves pools unenforced.
    ``global_slots`` is how many steps the operator-wide cap lets start (None: unlimited).
    """

    max_concurrency: int
    suspended: bool = False
    pool_slots: Mapping[str, int | None] | None = None
    global_slots: int | None = None


@dataclass
class Admitted:
    """The ready steps that start, in document order, and why each other ready step waits."""

    start: list[str] = field(default_factory=list)
    waiting: dict[str, Verdict] = field(default_factory=dict)


def admit(plan: Plan, ready: Sequence[str], part: PartStates, caps: Caps,
          queues: Queues | None = None) -> Admitted:
    """Which of ``ready`` start. With ``queues``, each queue is asked once, with what would
    start without its own cap (pools first, then the operator-wide cap, as R4 combines them)."""
    pool_slots, global_slots = caps.pool_slots, caps.global_slots
    if queues is None:
        return _admit(plan, ready, part, caps, pool_slots, global_slots)
    if pool_slots is not None:
        pool_slots = queues.pool_slots(_admit(plan, ready, part, caps, pool_slots, global_slots).start)
    admitted = _admit(plan, ready, part, caps, pool_slots, global_slots)
    granted = queues.global_slots(admitted.start, part.count(RUNNING))
    if granted is None or granted >= len(admitted.start):
        return admitted
    return _admit(plan, ready, part, caps, pool_slots, granted)


def _admit(plan: Plan, ready: Sequence[str], part: PartStates, caps: Caps,
           pool_slots: Mapping[str, int | None] | None, global_slots: int | None) -> Admitted:
    """One pass over the ready steps in document order (C1: the first ready steps go first)."""
    admitted = Admitted()
    running = part.count(RUNNING)
    budget = _Budget(plan, part) if plan.budget is not None else None
    pools = dict(pool_slots) if pool_slots is not None else None
    cap = caps.max_concurrency
    for name in ready:
        pool = plan.step_by_name[name].pool
        if caps.suspended:
            admitted.waiting[name] = Verdict(SUSPENDED, "workflow is suspended")
        elif running + len(admitted.start) >= cap:
            admitted.waiting[name] = Verdict(WAITING_FOR_SLOT, f"waiting for a slot (maxConcurrency {cap})")
        elif (verdict := _capacity_wait(name, pool, budget, pools)) is not None:
            admitted.waiting[name] = verdict
        elif global_slots is not None and len(admitted.start) >= global_slots:
            admitted.waiting[name] = Verdict(WAITING_FOR_SLOT, "waiting for a slot (operator-wide limit)")
        else:
            admitted.start.append(name)
            if budget is not None:
                budget.take(name)
            if pool is not None and pools is not None and pools[pool] is not None:
                pools[pool] -= 1
    return admitted


def _capacity_wait(name: str, pool: str | None, budget: _Budget | None,
                   pools: Mapping[str, int | None] | None) -> Verdict | None:
    """R1, then R2: why the step may not start now, if it may not."""
    if budget is not None and (verdict := budget.wait(name)) is not None:
        return verdict
    if pool is None or pools is None:
        return None
    return _pool_wait(pool, pools)


def _pool_wait(pool: str, slots: Mapping[str, int | None]) -> Verdict | None:
    """R2: why a step may not take a slot of ``pool`` now, if it may not."""
    if pool not in slots:
        return Verdict(POOL_NOT_FOUND, f'StepPool "{pool}" does not exist; the step starts once it does')
    left = slots[pool]
    if left is None or left > 0:
        return None
    return Verdict(WAITING_FOR_POOL, f'waiting for a slot of StepPool "{pool}"')


class _Budget:
    """R1 within one decision: the requests of the running steps and of those started so far.

    A ready step that does not fit holds back the later ready steps that ask for a resource it
    is short of, so a large step is not overtaken again and again by smaller ones; a step that
    asks for none of those still starts.
    """

    def __init__(self, plan: Plan, part: PartStates):
        self.plan = plan
        self.limit: Mapping[str, Decimal] = plan.budget or {}
        self.used: dict[str, Decimal] = {}
        for name in part.with_phase(RUNNING):
            capacity.add(self.used, self._need(name))
        self.short: dict[str, str] = {}  # resource -> the first step waiting for it

    def _need(self, name: str) -> Mapping[str, Decimal]:
        return {r: q for r, q in self.plan.requests.get(name, {}).items() if r in self.limit}

    def wait(self, name: str) -> Verdict | None:
        need = self._need(name)
        blocker = next((self.short[r] for r in need if r in self.short and need[r] > 0), None)
        if blocker is not None:
            return Verdict(WAITING_FOR_RESOURCES, f'waiting behind "{blocker}" for {capacity.describe(need)} '
                                                  "(maxResources)")
        if capacity.fits(need, self.used, self.limit):
            return None
        lacking = [r for r, q in need.items() if self.used.get(r, 0) + q > self.limit[r]]
        for resource in lacking:
            self.short.setdefault(resource, name)
        free = capacity.free(self.used, self.limit)
        return Verdict(WAITING_FOR_RESOURCES, f"needs {capacity.describe(need, lacking)}; free "
                                              f"{capacity.describe(free, lacking)} of maxResources "
                                              f"{capacity.describe(self.limit, lacking)}")

    def take(self, name: str) -> None:
        capacity.add(self.used, self._need(name))
