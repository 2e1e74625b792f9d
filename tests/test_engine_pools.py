"""R2 (StepPools) and R4 (caps combine): the engine's pool input and PoolQueue across workflows."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import step, workflow
from stepflow.engine import (
    POOL_NOT_FOUND,
    RUNNING,
    SUCCEEDED,
    WAITING_FOR_POOL,
    WAITING_FOR_RESOURCES,
    WAITING_FOR_SLOT,
    PoolQueue,
    SlotQueue,
    StepState,
    apply_skips,
    decide,
)
from stepflow.plan import Plan, compile_workflow


def pooled(name: str, pool: str = "deploys", **fields) -> dict:
    return step(name, parallel=True, pool=pool, **fields)


def plan(*steps: dict, name: str = "wf", **spec) -> Plan:
    spec.setdefault("maxConcurrency", 1000)
    return compile_workflow(workflow(*steps, name=name, **spec))


def test_r2_a_full_pool_makes_its_steps_wait_and_others_start():
    p = plan(pooled("a"), pooled("b"), step("c", parallel=True))
    decision = decide(p, {}, now=0, started_at=0, pool_slots={"deploys": 1})
    assert decision.start == ("a", "c")
    assert decision.waiting["b"].reason == WAITING_FOR_POOL
    assert '"deploys"' in decision.waiting["b"].message


def test_r2_a_pool_that_does_not_exist_waits_as_pool_not_found():
    p = plan(pooled("a", pool="missing"))
    decision = decide(p, {}, now=0, started_at=0, pool_slots={})
    assert decision.start == () and decision.phase != "Failed"
    assert decision.waiting["a"].reason == POOL_NOT_FOUND


def test_r2_unenforced_or_unlimited_pools_hold_nothing_back():
    p = plan(pooled("a"), pooled("b"))
    assert decide(p, {}, now=0, started_at=0).start == ("a", "b")
    assert decide(p, {}, now=0, started_at=0, pool_slots={"deploys": None}).start == ("a", "b")


def test_r4_every_cap_must_allow_a_step():
    p = plan(pooled("a"), pooled("b"), pooled("c"), pooled("d"), maxConcurrency=3)
    decision = decide(p, {}, now=0, started_at=0, pool_slots={"deploys": 2}, global_slots=5)
    assert decision.start == ("a", "b")  # the pool's 2 slots
    assert decision.waiting["c"].reason == WAITING_FOR_POOL
    running = {"a": StepState(RUNNING), "b": StepState(RUNNING)}
    capped = decide(p, running, now=0, started_at=0, pool_slots={"deploys": 5}, global_slots=5)
    assert capped.start == ("c",) and capped.waiting["d"].reason == WAITING_FOR_SLOT  # maxConcurrency 3
    operator_wide = decide(p, running, now=0, started_at=0, pool_slots={"deploys": 5}, global_slots=0)
    assert operator_wide.start == () and operator_wide.waiting["c"].reason == WAITING_FOR_SLOT
    budgeted = plan(pooled("y", resources={"requests": {"cpu": "2"}}),
                    pooled("z", resources={"requests": {"cpu": "1"}}), maxResources={"cpu": "2"})
    waits = decide(budgeted, {"y": StepState(RUNNING)}, now=0, started_at=0, pool_slots={"deploys": 1})
    assert waits.start == () and waits.waiting["z"].reason == WAITING_FOR_RESOURCES


def test_pool_queue_is_first_come_first_served_across_workflows_in_turns():
    queue = PoolQueue({"p": 1})
    assert queue.grant("p", "first", ["a", "b"], []) == 1
    assert queue.grant("p", "second", ["x"], []) == 0
    queue.started("p", "first", ["a"])
    assert queue.in_use("p") == 1 and queue.holders("p") == [("first", "a")]
    assert queue.grant("p", "first", ["b"], ["a"]) == 0
    queue.grant("p", "first", ["b"], [])  # "a" ended: its slot is "second"'s turn, "first" had one
    assert queue.next_in_line("p") == ["second"]
    assert queue.grant("p", "second", ["x"], []) == 1
    assert queue.waiting("p") == [("second", "x"), ("first", "b")]


def test_pool_queue_forgets_finished_workflows_and_deleted_pools():
    queue = PoolQueue({"p": 2})
    queue.grant("p", "w", ["a", "b", "c"], [])
    queue.started("p", "w", ["a", "b"])
    queue.forget("w", ["p"])
    assert queue.in_use("p") == 0 and queue.waiting("p") == []
    queue.set_limit("p", None)
    assert queue.grant("p", "w", ["a"], []) == 0  # a deleted pool grants nothing
    queue.set_limit("p", 3)
    assert queue.grant("p", "w", ["a"], []) == 1


# --- several workflows, as the operator drives them ---------------------------------------------

@dataclass
class Fleet:
    """Workflows sharing pools through one PoolQueue; steps take ``duration`` each, in order of
    arrival. Time is a number; each tick ends every step due and reconciles every workflow."""

    plans: list[Plan]
    limits: dict[str, int]
    duration: float = 1.0
    arrivals: list[float] = field(default_factory=list)
    states: dict[str, dict[str, StepState]] = field(default_factory=dict)
    ends: dict[tuple[str, str], float] = field(default_factory=dict)
    starts: list[tuple[float, str, str]] = field(default_factory=list)
    peak: dict[str, int] = field(default_factory=dict)
    releases: list[float] = field(default_factory=list)

    def run(self, limit_rounds: int = 10_000) -> None:
        queue = PoolQueue(self.limits)
        arrivals = self.arrivals or [0.0] * len(self.plans)
        now = 0.0
        for _ in range(limit_rounds):
            for (wf, name), end in sorted(self.ends.items()):
                if end <= now:
                    self.states[wf][name] = StepState(SUCCEEDED, finished_at=end)
                    del self.ends[wf, name]
                    self.releases.append(now)
            for p, arrival in zip(self.plans, arrivals, strict=True):
                if arrival <= now:
                    self.reconcile(p, queue, now)
            for pool in self.limits:
                self.peak[pool] = max(self.peak.get(pool, 0), queue.in_use(pool))
                assert queue.in_use(pool) == sum(
                    1 for wf, name in self.ends if self.plan(wf).step_by_name[name].pool == pool)
            if all(len(self.states.get(p.spec.name, {})) == len(p.steps) and not self.ends and all(
                    s.phase == SUCCEEDED for s in self.states[p.spec.name].values()) for p in self.plans):
                return
            now = min([*self.ends.values(), *(a for a in arrivals if a > now)], default=now + 1)
        raise AssertionError("the fleet never finished")

    def plan(self, name: str) -> Plan:
        return next(p for p in self.plans if p.spec.name == name)

    def reconcile(self, p: Plan, queue: PoolQueue, now: float) -> None:
        """What the operator's reconcile does: decide, ask the pools, decide with their grants."""
        wf = p.spec.name
        states = self.states.setdefault(wf, {})
        wanted = decide(p, states, now=now, started_at=0, pool_slots=dict.fromkeys(p.pools))
        slots = {}
        for pool in p.pools:
            holding = [n for n, s in states.items() if s.phase == RUNNING and p.step_by_name[n].pool == pool]
            slots[pool] = queue.grant(pool, wf, [n for n in wanted.start if p.step_by_name[n].pool == pool],
                                      holding)
        decision = decide(p, states, now=now, started_at=0, pool_slots=slots)
        states.update(apply_skips(states, decision, now))
        for name in decision.start:
            states[name] = StepState(RUNNING, started_at=now)
            self.ends[wf, name] = now + self.duration
            self.starts.append((now, wf, name))
            if p.step_by_name[name].pool:
                queue.started(p.step_by_name[name].pool, wf, [name])


def test_r2_a_mutex_pool_never_runs_two_workflows_steps_at_once():
    plans = [plan(pooled("deploy", pool="prod"), step("after"), name=f"wf{i}") for i in range(3)]
    fleet = Fleet(plans, {"prod": 1})
    fleet.run()
    assert fleet.peak == {"prod": 1}
    deploys = sorted(t for t, _, name in fleet.starts if name == "deploy")
    assert deploys == [0.0, 1.0, 2.0]  # one at a time, each as soon as the previous ended


def test_r2_no_workflow_starves_a_small_one_starts_within_two_slot_releases():
    big = plan(*(pooled(f"s{i}") for i in range(100)), name="big")
    small = plan(pooled("only"), name="small")
    fleet = Fleet([big, small], {"deploys": 2}, arrivals=[0.0, 0.5])
    fleet.run()
    started = next(t for t, wf, _ in fleet.starts if wf == "small")
    releases_before = [t for t in fleet.releases if 0.5 <= t <= started]
    assert len(releases_before) <= 2, (started, releases_before)
    assert fleet.peak == {"deploys": 2}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(["p", "q", None]), min_size=1, max_size=6), min_size=1, max_size=4),
       st.integers(1, 3), st.integers(1, 3), st.lists(st.floats(0, 3), min_size=4, max_size=4))
def test_property_a_pools_limit_is_never_exceeded_across_workflows(shapes, p_limit, q_limit, arrivals):
    plans = [plan(*(step(f"s{i}", parallel=True, **({"pool": pool} if pool else {}))
                    for i, pool in enumerate(shape)), name=f"wf{w}") for w, shape in enumerate(shapes)]
    fleet = Fleet(plans, {"p": p_limit, "q": q_limit}, arrivals=arrivals[: len(plans)])
    fleet.run()  # asserts, at every tick, that the queue's count is what truly runs
    assert fleet.peak["p"] <= p_limit and fleet.peak["q"] <= q_limit
    assert len(fleet.starts) == sum(len(s) for s in shapes)  # everything ran, nobody starved


def test_pools_and_the_operator_wide_cap_are_separate_books():
    slots = SlotQueue(1)
    assert slots.grant("w", ["a"], 0) == 1
    queue = PoolQueue({"p": 5})
    assert queue.grant("p", "w", ["a"], []) == 1
