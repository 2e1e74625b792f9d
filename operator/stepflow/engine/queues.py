"""The cross-workflow queues behind the operator-wide cap (C2) and StepPools (R2).

Pure bookkeeping, first come, first served: no I/O and no clock. An executor that runs many
workflows keeps one of each, under its own lock, and answers :class:`stepflow.engine.admission.Queues`
from them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any


class SlotQueue:
    """C2: an operator-wide cap on running steps, shared first come, first served.

    Each workflow reports the steps the engine wants to start. They queue in
    arrival order; a workflow may start only the ones among the first free
    slots, so a large workflow that arrived later cannot starve the others.
    Pure bookkeeping: the operator owns one and calls it under its own lock.
    """

    def __init__(self, limit: int | None):
        self.limit = limit
        self._queue: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._running: dict[str, int] = {}

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def grant(self, workflow: str, wanted: Iterable[str], running: int) -> int:
        """Record ``workflow``'s wanted steps and running count; return how many it may start."""
        wanted = list(wanted)
        self._running[workflow] = running
        keep = set(wanted)
        for key in [k for k in self._queue if k[0] == workflow and k[1] not in keep]:
            del self._queue[key]
        for name in wanted:
            self._queue.setdefault((workflow, name), None)
        if self.limit is None:
            return len(wanted)
        free = max(self.limit - self.running, 0)
        head = list(self._queue)[:free]
        return sum(1 for key in head if key[0] == workflow)

    def started(self, workflow: str, names: Iterable[str]) -> None:
        for name in names:
            self._queue.pop((workflow, name), None)
            self._running[workflow] = self._running.get(workflow, 0) + 1

    def forget(self, workflow: str) -> None:
        """Drop a finished or deleted workflow from the books."""
        self._running.pop(workflow, None)
        for key in [k for k in self._queue if k[0] == workflow]:
            del self._queue[key]

    def next_in_line(self) -> list[str]:
        """Workflows whose queued steps now fit in free slots: the operator wakes them."""
        if self.limit is None:
            return list(dict.fromkeys(w for w, _ in self._queue))
        free = max(self.limit - self.running, 0)
        return list(dict.fromkeys(w for w, _ in list(self._queue)[:free]))


class PoolQueue:
    """R2: the slots of StepPools, shared across workflows first come, first served, in turns.

    Workflows queue per pool in the order they first asked for a slot; a free slot goes to the
    workflow at the head, which then goes to the back if it wants more. So a workflow of 100
    steps that came first does not keep a later 1-step workflow waiting for 98 releases: it
    waits for at most as many releases as workflows are ahead of it. Each reconcile tells, per
    pool, which of its steps hold a slot (they run) and which want one, in document order.
    A grant costs O(the steps given + the pool's free slots), whatever the number of workflows.
    Pure bookkeeping, keyed by whatever the executor uses for pools and workflows; the
    operator calls it under a lock.
    """

    def __init__(self, limits: Mapping[Any, int] | None = None):
        self.limits: dict[Any, int] = dict(limits or {})  # pools that exist
        self._held: dict[Any, dict[Any, frozenset[str]]] = {}  # pool -> workflow -> steps
        self._in_use: dict[Any, int] = {}
        self._queue: dict[Any, OrderedDict[Any, tuple[str, ...]]] = {}  # pool -> workflow -> wanted

    def set_limit(self, pool: Any, limit: int | None) -> None:
        """A pool created, changed (None: deleted)."""
        if limit is None:
            self.limits.pop(pool, None)
        else:
            self.limits[pool] = limit

    def in_use(self, pool: Any) -> int:
        return self._in_use.get(pool, 0)

    def free(self, pool: Any) -> int:
        return max(self.limits.get(pool, 0) - self.in_use(pool), 0)

    def grant(self, pool: Any, workflow: Any, wanted: Iterable[str], holding: Iterable[str]) -> int:
        """Record what ``workflow`` holds of and wants from ``pool``; how many it may start now."""
        self._hold(pool, workflow, frozenset(holding))
        wanted = tuple(wanted)
        queue = self._queue.setdefault(pool, OrderedDict())
        if not wanted:
            queue.pop(workflow, None)
            return 0
        queue[workflow] = wanted  # a newcomer joins at the back; the others keep their turn
        return self._share(pool, workflow) if pool in self.limits else 0

    def _share(self, pool: Any, workflow: Any) -> int:
        """The free slots dealt one at a time to the queue's workflows in turn: ``workflow``'s part."""
        free, mine = self.free(pool), 0
        turns = [(owner, len(wanted)) for owner, wanted in islice(self._queue[pool].items(), free)]
        while free > 0 and turns:
            still = []
            for owner, want in turns:
                if free == 0:
                    break
                free -= 1
                if owner == workflow:
                    mine += 1
                if want > 1:
                    still.append((owner, want - 1))
            turns = still
        return mine

    def started(self, pool: Any, workflow: Any, names: Iterable[str]) -> None:
        """Steps took slots: they hold them, and the workflow's turn goes to the back."""
        names = frozenset(names)
        if not names:
            return
        queue = self._queue.setdefault(pool, OrderedDict())
        left = tuple(n for n in queue.pop(workflow, ()) if n not in names)
        if left:
            queue[workflow] = left
        self._hold(pool, workflow, self._held.get(pool, {}).get(workflow, frozenset()) | names)

    def forget(self, workflow: Any, pools: Iterable[Any]) -> None:
        """A finished or deleted workflow holds and wants nothing any more."""
        for pool in pools:
            self.grant(pool, workflow, (), ())

    def next_in_line(self, pool: Any) -> list[Any]:
        """Workflows whose turn comes with the pool's free slots: the executor wakes them."""
        return list(islice(self._queue.get(pool, {}), self.free(pool)))

    def holders(self, pool: Any) -> list[tuple[Any, str]]:
        return sorted((w, n) for w, names in self._held.get(pool, {}).items() for n in names)

    def waiting(self, pool: Any) -> list[tuple[Any, str]]:
        """Waiting steps, the workflows in their turn's order."""
        return [(w, n) for w, wanted in self._queue.get(pool, {}).items() for n in wanted]

    def _hold(self, pool: Any, workflow: Any, names: frozenset[str]) -> None:
        held = self._held.setdefault(pool, {})
        self._in_use[pool] = self.in_use(pool) - len(held.get(workflow, ())) + len(names)
        if names:
            held[workflow] = names
        else:
            held.pop(workflow, None)
