"""Admission as its own step: the caps' order (R4), and the shared queues asked once each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from builders import step, workflow
from stepflow.engine import WAITING_FOR_POOL, WAITING_FOR_SLOT, decide
from stepflow.plan import compile_workflow


class CountingQueues:
    """Grants what it is told to, and records every question."""

    def __init__(self, pools: Mapping[str, int], slots: int | None):
        self.pools, self.slots = pools, slots
        self.pool_asks: list[list[str]] = []
        self.slot_asks: list[tuple[list[str], int]] = []

    def pool_slots(self, wanted: Sequence[str]) -> Mapping[str, int | None]:
        self.pool_asks.append(list(wanted))
        return dict(self.pools)

    def global_slots(self, wanted: Sequence[str], running: int) -> int | None:
        self.slot_asks.append((list(wanted), running))
        return self.slots


def _plan():
    steps = [step("a", parallel=True, pool="deploys"), step("b", parallel=True, pool="deploys"),
             step("c", parallel=True), step("d", parallel=True)]
    return compile_workflow(workflow(*steps, maxConcurrency=3))


def test_each_shared_queue_is_asked_once_with_what_would_start_without_its_own_cap():
    queues = CountingQueues({"deploys": 1}, slots=1)
    decision = decide(_plan(), {}, now=0, started_at=0, pool_slots={"deploys": None}, queues=queues)
    # the pools are asked with what C1 lets start when pools do not count: a, b, c
    assert queues.pool_asks == [["a", "b", "c"]]
    # the operator-wide cap with what starts once the pool said 1: b waits, so d moves up
    assert queues.slot_asks == [(["a", "c", "d"], 0)]
    assert decision.start == ("a",)
    assert decision.waiting["b"].reason == WAITING_FOR_POOL
    assert decision.waiting["c"].message == "waiting for a slot (operator-wide limit)"


def test_without_an_operator_wide_cap_the_queue_answer_none_changes_nothing():
    queues = CountingQueues({"deploys": 2}, slots=None)
    decision = decide(_plan(), {}, now=0, started_at=0, pool_slots={"deploys": None}, queues=queues)
    assert decision.start == ("a", "b", "c")  # C1: maxConcurrency 3
    assert decision.waiting["d"].reason == WAITING_FOR_SLOT
    assert len(queues.pool_asks) == len(queues.slot_asks) == 1


def test_a_workflow_without_pools_never_asks_the_pools():
    queues = CountingQueues({}, slots=5)
    plan = compile_workflow(workflow(step("a"), step("b")))
    decide(plan, {}, now=0, started_at=0, queues=queues)
    assert queues.pool_asks == []
    assert queues.slot_asks == [(["a"], 0)]
