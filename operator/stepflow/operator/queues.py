"""The operator's shared slots: the operator-wide cap (C2) and StepPools (R2) across workflows.

Who gets a slot is the engine's business (:mod:`stepflow.engine.admission` asks
:class:`stepflow.engine.queues.SlotQueue` and the pools' queue, once each per reconcile). This
module keeps those books under one lock for the reconcile workers, answers the engine's
:class:`~stepflow.engine.admission.Queues` for one workflow, and wakes the workflows whose turn
comes when slots free up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from stepflow.engine import RUNNING, SlotQueue, StepState
from stepflow.operator import metrics
from stepflow.operator.pools import Pools
from stepflow.operator.store import Key, Store
from stepflow.plan import Plan


class SharedSlots:
    def __init__(self, slots: SlotQueue, pools: Pools, wake: Callable[[Key], None]):
        self.slots = slots
        self.pools = pools
        self.wake = wake
        self._lock = threading.Lock()  # SlotQueue is plain bookkeeping; workers share it
        self._running: dict[Key, int] = {}

    @property
    def capped(self) -> bool:
        return self.slots.limit is not None

    def pool_slots(self, key: Key, plan: Plan) -> dict[str, int | None] | None:
        """The pools' inputs to the caps before any grant: existing pools, missing ones absent."""
        return self.pools.existing(key[0], plan) if plan.pools else None

    def for_workflow(self, key: Key, plan: Plan, states: Mapping[str, StepState]) -> WorkflowQueues:
        return WorkflowQueues(self, key, plan, states)

    def started(self, key: Key, plan: Plan, names: Sequence[str]) -> None:
        with self._lock:
            self.slots.started(key, names)
        if plan.pools:
            self.pools.started(key, plan, names)

    def settled(self, key: Key, plan: Plan, states: Mapping[str, StepState], finished: bool) -> None:
        """After a reconcile: count the workflow's running steps, and wake the workflows whose
        turn comes with the slots it freed."""
        running = sum(1 for s in states.values() if s.phase == RUNNING)
        freed = running < self._running.get(key, 0)
        self._running[key] = running
        metrics.RUNNING_STEPS.set(sum(self._running.values()))
        with self._lock:
            if finished:
                self.slots.forget(key)
            wake = self.slots.next_in_line() if self.capped and (freed or finished) else []
        if finished and plan.pools:
            wake += self.pools.forget(key)
        self._wake_others(key, wake)

    def forget(self, key: Key) -> None:
        """The workflow is gone: free its slots and let the next in line start."""
        with self._lock:
            self.slots.forget(key)
            next_in_line = self.slots.next_in_line()
        self._running.pop(key, None)
        metrics.RUNNING_STEPS.set(sum(self._running.values()))
        self._wake_others(key, [*next_in_line, *self.pools.forget(key)])

    def prime(self, store: Store) -> None:
        """A new leader's caps start from what the old leader left running, so the first
        workflows it reconciles cannot take slots that are in use."""
        with self._lock:
            for key, running in store.running_steps().items():
                if running:
                    self.slots.grant(key, [], running)
                    self._running[key] = running
        self.pools.prime(store.running_in_pools())

    def _wake_others(self, key: Key, keys: Iterable[Key]) -> None:
        for other in keys:
            if other != key:
                self.wake(other)


class WorkflowQueues:
    """One workflow's view of the shared slots, as the engine's admission asks for them."""

    def __init__(self, shared: SharedSlots, key: Key, plan: Plan, states: Mapping[str, StepState]):
        self.shared, self.key, self.plan, self.states = shared, key, plan, states
        self.pools_granted: dict[str, int | None] = {}

    def pool_slots(self, wanted: Sequence[str]) -> Mapping[str, int | None]:
        slots, wake = self.shared.pools.grant(self.key, self.plan, wanted, self.states)
        self.shared._wake_others(self.key, wake)
        self.pools_granted = dict(slots)
        return slots

    def global_slots(self, wanted: Sequence[str], running: int) -> int | None:
        if not self.shared.capped:
            return None
        with self.shared._lock:
            return self.shared.slots.grant(self.key, wanted, running)

    def left_after(self, started: Sequence[str]) -> GrantsLeft:
        """What this reconcile's grants leave once ``started`` took theirs: the answers for a
        second decision within the reconcile, which must not ask the queues again."""
        left = dict(self.pools_granted)
        for name in started:
            pool = self.plan.step_by_name[name].pool
            if pool is not None and left.get(pool) is not None:
                left[pool] -= 1  # type: ignore[operator]
        return GrantsLeft(left, self.shared.capped)


class GrantsLeft:
    """The rest of one reconcile's grants: nothing more from the operator-wide cap."""

    def __init__(self, pools: Mapping[str, int | None], capped: bool):
        self.pools, self.capped = pools, capped

    def pool_slots(self, wanted: Sequence[str]) -> Mapping[str, int | None]:
        return self.pools

    def global_slots(self, wanted: Sequence[str], running: int) -> int | None:
        return 0 if self.capped else None
