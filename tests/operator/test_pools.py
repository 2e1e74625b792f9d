"""The operator's StepPool books (R2): who to wake, what a new leader counts, what status to write."""

from __future__ import annotations

from builders import step, workflow
from stepflow.engine import RUNNING, StepState
from stepflow.operator.pools import Pools
from stepflow.plan import compile_workflow

NS = "team-a"
A, B = (NS, "a"), (NS, "b")
POOL = (NS, "prod")


def plan(name: str, *steps: str):
    return compile_workflow(workflow(*(step(s, parallel=True, pool="prod") for s in steps), name=name))


def test_a_pool_that_appears_wakes_the_workflows_that_name_it():
    pools, p = Pools(), plan("a", "deploy")
    assert pools.existing(NS, p) == {}  # missing: the engine makes the step wait as PoolNotFound
    pools.grant(A, p, [], {})
    assert pools.set_limit(POOL, 1) == [A]
    assert pools.set_limit(POOL, 1) == []  # the echo of a status write: nothing to wake
    assert pools.set_limit(POOL, 2) == [A]
    assert pools.existing(NS, p) == {"prod": None}
    assert pools.set_limit(POOL, None) == [] and pools.existing(NS, p) == {}


def test_a_released_slot_wakes_the_next_workflow_in_line():
    pools = Pools()
    pools.set_limit(POOL, 1)
    first, second = plan("a", "deploy"), plan("b", "deploy")
    slots, _ = pools.grant(A, first, ["deploy"], {})
    assert slots == {"prod": 1}
    pools.started(A, first, ["deploy"])
    assert pools.grant(B, second, ["deploy"], {})[0] == {"prod": 0}
    # "a"'s deploy ended: its next reconcile releases the slot and names "b" to wake.
    slots, wake = pools.grant(A, first, [], {"deploy": StepState("Succeeded")})
    assert wake == [B]
    assert pools.grant(B, second, ["deploy"], {})[0] == {"prod": 1}


def test_a_finished_or_deleted_workflow_gives_its_slots_to_the_next_in_line():
    pools = Pools()
    pools.set_limit(POOL, 1)
    first, second = plan("a", "deploy"), plan("b", "deploy")
    pools.grant(A, first, ["deploy"], {})
    pools.started(A, first, ["deploy"])
    pools.grant(B, second, ["deploy"], {})
    assert pools.forget(A) == [B]


def test_a_new_leader_counts_the_holders_before_granting():
    pools = Pools()
    pools.set_limit(POOL, 1)
    pools.prime({A: {"prod": ["deploy"]}})
    assert pools.grant(B, plan("b", "deploy"), ["deploy"], {})[0] == {"prod": 0}


def test_status_is_written_only_when_it_changed():
    pools, p = Pools(), plan("a", "x", "y")
    pools.set_limit(POOL, 1)
    pools.grant(A, p, ["x", "y"], {})
    pools.started(A, p, ["x"])
    ((pool, status),) = pools.changed_statuses()
    assert pool == POOL
    assert status == {"inUse": 1, "waiting": 1, "holders": ["a/x"], "waitingSteps": ["a/y"]}
    pools.written(pool, status)
    pools.grant(A, p, ["y"], {"x": StepState(RUNNING)})  # the same books again
    assert pools.changed_statuses() == []
    pools.grant(A, p, [], {"x": StepState(RUNNING), "y": StepState(RUNNING)})
    pools.started(A, p, ["y"])
    ((_, newer),) = pools.changed_statuses()
    assert newer["inUse"] == 2 and newer["waiting"] == 0
    pools.written(pool, None)  # its write failed: the next flush tries again
    assert pools.changed_statuses() == [(POOL, newer)]
