"""The operator's shared slots: one question to each queue per reconcile, and the next in line
woken when a workflow frees its slots."""

from __future__ import annotations

from builders import step, workflow
from scripted_api import KEY, NOW, ScriptedApi, setup
from stepflow.engine import RUNNING, SUCCEEDED, SlotQueue, StepState
from stepflow.operator.pools import Pools
from stepflow.operator.queues import SharedSlots
from stepflow.operator.reconcile import Reconciler
from stepflow.operator.runtime.events import EventRecorder
from stepflow.operator.store import Store
from stepflow.plan import compile_workflow


def counted(obj: object, method: str, calls: list[str]) -> None:
    original = getattr(obj, method)

    def wrapper(*args, **kwargs):
        calls.append(method)
        return original(*args, **kwargs)

    setattr(obj, method, wrapper)


def test_one_reconcile_asks_the_operator_wide_queue_and_each_pool_once():
    pools = Pools()
    pools.set_limit(("default", "deploys"), 1)
    slots = SlotQueue(1)
    calls: list[str] = []
    counted(slots, "grant", calls)
    counted(pools.queue, "grant", calls)
    steps = [{"name": "a", "script": "true", "parallel": True, "pool": "deploys"},
             {"name": "b", "script": "true", "parallel": True, "pool": "deploys"},
             {"name": "c", "script": "true", "parallel": True}]
    reconciler, api, _ = setup(steps, slots=slots, pools=pools)
    reconciler.reconcile(KEY)
    assert sorted(calls) == ["grant", "grant"]  # the pool once, the operator-wide cap once
    # one slot operator-wide: "a", first in document order
    assert [job["metadata"]["labels"]["stepflow.dev/step"] for job in api.jobs.values()] == ["a"]
    status = api.workflow["status"]["steps"]
    assert status["b"]["reason"] == "WaitingForPool"
    assert status["c"]["message"] == "waiting for a slot (operator-wide limit)"


def test_a_workflow_that_ends_or_goes_wakes_the_one_waiting_for_its_slot():
    woken: list[tuple[str, str]] = []
    shared = SharedSlots(SlotQueue(1), Pools(), wake=woken.append)
    first, second = ("default", "first"), ("default", "second")
    plan = compile_workflow(workflow(step("a")))
    assert shared.for_workflow(first, plan, {}).global_slots(["a"], 0) == 1
    shared.started(first, plan, ["a"])
    assert shared.for_workflow(second, plan, {}).global_slots(["a"], 0) == 0
    shared.settled(first, plan, {"a": StepState(phase=RUNNING)}, finished=False)
    assert woken == []  # nothing freed
    shared.settled(first, plan, {"a": StepState(phase=SUCCEEDED)}, finished=True)
    assert woken == [second]
    assert shared.for_workflow(second, plan, {}).global_slots(["a"], 0) == 1


def test_prime_counts_what_an_earlier_leader_left_running():
    store = Store(clock=lambda: NOW)
    reconciler = Reconciler(ScriptedApi({}), store, EventRecorder(lambda event: None), SlotQueue(2),
                            wake=lambda key: None, clock=lambda: NOW)
    store.running_steps = lambda: {("default", "x"): 2}  # type: ignore[method-assign]
    store.running_in_pools = lambda: {}  # type: ignore[method-assign]
    reconciler.prime_slots()
    assert reconciler.shared.slots.running == 2
