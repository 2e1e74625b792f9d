"""R2: each StepPool's status (its holders and waiting steps), written by the leader.

The books are :class:`stepflow.operator.pools.Pools`, kept by the reconciles; this loop writes
what changed, at most once a second per pool, so a busy pool adds no API write per step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from stepflow.operator.api import Api
from stepflow.operator.pools import Pools
from stepflow.operator.runtime.api import TRANSIENT_ERRORS, Forbidden, NotFound

log = logging.getLogger(__name__)
POOL_STATUS_INTERVAL = 1.0


async def write_pool_statuses(pools: Pools, api: Api, may_write: Callable[[], bool]) -> None:
    """Each StepPool's status, when it changed, at most once a second: the leader's books are
    the truth, so a standby writes none."""
    while True:
        await asyncio.sleep(POOL_STATUS_INTERVAL)
        if not may_write():
            continue
        await write_changed(pools, api)


async def write_changed(pools: Pools, api: Api) -> None:
    """One pass: a pool deleted meanwhile counts as written (its DELETED event follows); a
    failed write is tried again on the next pass."""
    for pool, status in pools.changed_statuses():
        try:
            await asyncio.to_thread(api.patch_pool_status, pool[0], pool[1], status)
        except NotFound:
            pools.written(pool, status)
        except (*TRANSIENT_ERRORS, Forbidden) as error:
            pools.written(pool, None)
            log.warning("could not write the status of StepPool %s/%s: %s", pool[0], pool[1],
                        " ".join(str(error).split())[:300])
        else:
            pools.written(pool, status)
