"""StepPool status: written by the leader only, when it changed, retried when it failed
(mirror: operator/pool_status.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from stepflow.operator import pool_status
from stepflow.operator.pool_status import write_changed, write_pool_statuses
from stepflow.operator.pools import Pools
from stepflow.operator.runtime.api import NotFound


class PoolApi:
    def __init__(self, failing: dict[str, list[Exception]] | None = None) -> None:
        self.failing = failing or {}
        self.patched: list[tuple[str, dict[str, Any]]] = []

    def patch_pool_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        errors = self.failing.get(name)
        if errors:
            raise errors.pop(0)
        self.patched.append((name, status))


def pools_named(*names: str) -> Pools:
    pools = Pools()
    for name in names:
        pools.set_limit(("ns", name), 1)
    return pools


def test_a_changed_status_is_written_once_and_a_failed_write_is_tried_again():
    pools = pools_named("ok", "flaky", "deleted")
    api = PoolApi({"flaky": [OSError("connection reset")], "deleted": [NotFound("gone")]})
    asyncio.run(write_changed(pools, api))  # type: ignore[arg-type]
    assert [name for name, _ in api.patched] == ["ok"]
    assert api.patched[0][1] == {"inUse": 0, "waiting": 0, "holders": [], "waitingSteps": []}
    asyncio.run(write_changed(pools, api))  # type: ignore[arg-type]
    assert [name for name, _ in api.patched] == ["ok", "flaky"]  # a deleted pool is not retried
    asyncio.run(write_changed(pools, api))  # type: ignore[arg-type]
    assert len(api.patched) == 2  # nothing changed since


def test_a_standby_writes_no_pool_status(monkeypatch):
    monkeypatch.setattr(pool_status, "POOL_STATUS_INTERVAL", 0.01)
    pools, api, leading = pools_named("ok"), PoolApi(), [False]

    async def main() -> None:
        writer = asyncio.create_task(write_pool_statuses(pools, api, lambda: leading[0]))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)  # twenty passes as a standby
        assert api.patched == []
        leading[0] = True
        deadline = time.monotonic() + 5
        while not api.patched:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        writer.cancel()

    asyncio.run(main())
    assert [name for name, _ in api.patched] == ["ok"]
