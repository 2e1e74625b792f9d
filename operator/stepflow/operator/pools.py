"""StepPools in the operator (R2): limits from the watch, slots across workflows, pool status.

Who gets a slot is the engine's business (:class:`stepflow.engine.PoolQueue` and ``decide``);
this module keeps those books under a lock for the reconcile workers, says which workflows to
wake when slots free up, and keeps each pool's status current. Status is written from a dirty
set at most once a second per pool, so that a busy pool adds no API write per step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from stepflow.engine import RUNNING, PoolQueue, StepState
from stepflow.plan import Plan

Key = tuple[str, str]  # (namespace, name), of a workflow or of a pool
SHOWN = 20  # holders and waiting steps listed in a pool's status; the counts are whole


class Pools:
    def __init__(self) -> None:
        self.queue = PoolQueue()
        self._lock = threading.Lock()
        self._dirty: set[Key] = set()
        self._written: dict[Key, dict[str, Any]] = {}
        self._users: dict[Key, set[Key]] = {}  # pool -> workflows whose plan names it

    def set_limit(self, pool: Key, limit: int | None) -> list[Key]:
        """A StepPool was created, changed or deleted (None); the workflows to wake. The echo
        of our own status write changes no limit, and wakes nobody: otherwise every write would
        reconcile every workflow of the pool."""
        with self._lock:
            if self.queue.limits.get(pool) == limit:
                return []
            self.queue.set_limit(pool, limit)
            self._dirty.add(pool)
            if limit is None:
                self._written.pop(pool, None)
                return []
            return sorted(self._users.get(pool, ()))

    def existing(self, namespace: str, plan: Plan) -> dict[str, int | None]:
        """``pool_slots`` for the first decision: existing pools unlimited, missing ones absent."""
        with self._lock:
            return {p: None for p in plan.pools if (namespace, p) in self.queue.limits}

    def grant(self, key: Key, plan: Plan, wanted: Iterable[str],
              states: Mapping[str, StepState]) -> tuple[dict[str, int | None], list[Key]]:
        """Tell each pool what this workflow holds and wants; returns ``pool_slots`` for the
        decision and the other workflows to wake, whose turn a released slot now is."""
        wanted = list(wanted)
        slots: dict[str, int | None] = {}
        wake: set[Key] = set()
        with self._lock:
            for name in plan.pools:
                pool = (key[0], name)
                self._users.setdefault(pool, set()).add(key)
                holding = [s for s in plan.pool_steps[name] if states.get(s, _IDLE).phase == RUNNING]
                before = self.queue.in_use(pool)
                mine = [s for s in wanted if plan.step_by_name[s].pool == name]
                granted = self.queue.grant(pool, key, mine, holding)
                if pool in self.queue.limits:
                    slots[name] = granted
                if self.queue.in_use(pool) < before:
                    wake.update(self.queue.next_in_line(pool))
                self._dirty.add(pool)
        wake.discard(key)
        return slots, sorted(wake)

    def started(self, key: Key, plan: Plan, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                pool = plan.step_by_name[name].pool
                if pool:
                    self.queue.started((key[0], pool), key, [name])
                    self._dirty.add((key[0], pool))

    def forget(self, key: Key) -> list[Key]:
        """The workflow is over or gone: its slots go to the next in line, who are returned."""
        wake: set[Key] = set()
        with self._lock:
            pools = [pool for pool, users in self._users.items() if key in users]
            for pool in pools:
                self._users[pool].discard(key)
                self.queue.grant(pool, key, (), ())
                wake.update(self.queue.next_in_line(pool))
                self._dirty.add(pool)
        wake.discard(key)
        return sorted(wake)

    def prime(self, running: Mapping[Key, Mapping[str, list[str]]]) -> None:
        """A new leader counts what already holds slots before any reconcile grants one."""
        with self._lock:
            for key, by_pool in running.items():
                for name, steps in by_pool.items():
                    self.queue.started((key[0], name), key, steps)
                    self._users.setdefault((key[0], name), set()).add(key)
                    self._dirty.add((key[0], name))

    def changed_statuses(self) -> list[tuple[Key, dict[str, Any]]]:
        """Pools whose status differs from the last one written, with the new status."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            changed = []
            for pool in sorted(dirty):
                if pool not in self.queue.limits:
                    continue
                status = self._status(pool)
                if status != self._written.get(pool):
                    changed.append((pool, status))
            return changed

    def written(self, pool: Key, status: dict[str, Any] | None) -> None:
        """Record a status write (None: it failed, so try again on the next flush)."""
        with self._lock:
            if status is None:
                self._dirty.add(pool)
            else:
                self._written[pool] = status

    def _status(self, pool: Key) -> dict[str, Any]:
        holders = [f"{workflow[1]}/{step}" for workflow, step in self.queue.holders(pool)]
        waiting = [f"{workflow[1]}/{step}" for workflow, step in self.queue.waiting(pool)]
        return {"inUse": len(holders), "waiting": len(waiting), "holders": holders[:SHOWN],
                "waitingSteps": waiting[:SHOWN]}


_IDLE = StepState()
