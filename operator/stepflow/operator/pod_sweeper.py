"""Workflows whose Jobs wait for a pod are reconciled every few seconds.

A Job whose pod cannot be created (no such ServiceAccount, PodSecurity, a quota) or cannot be
scheduled changes nothing on the Job, and the pod watch shows no pod until it ends
(child_watches.POD_PHASES_WATCHED). So the sweeper wakes such workflows, and their reconcile reads
the Job's Events or pods (backing off per Job). Pod reports of Jobs gone are pruned on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stepflow.operator.store import Key, Store

SWEEP_INTERVAL = 5.0


async def sweep_waiting_jobs(store: Store, wake: Callable[[Key], None]) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        sweep(store, wake)


def sweep(store: Store, wake: Callable[[Key], None]) -> None:
    """One pass."""
    store.prune_pods()
    for key in store.waiting_jobs(store.clock()):
        wake(key)
