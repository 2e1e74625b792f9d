"""The pure scheduler, driven through a discrete-event simulator (tests/simulate.py).

Times are relative to the simulator's start ``T0``; every assertion reads like
a timeline a user would see: who started when, who was skipped and why.
"""

from __future__ import annotations

from builders import plan_of, step
from simulate import Arrival, max_overlap, simulate, simulate_fleet
from stepflow.engine import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    SUSPENDED,
    SlotQueue,
    StepState,
    Verdict,
    decide,
)

T0 = 1_000.0


def starts(result) -> dict[str, float]:
    return {n: i.start - T0 for n, i in result.intervals.items()}


def ends(result) -> dict[str, float]:
    return {n: i.end - T0 for n, i in result.intervals.items()}


# --- G5: the barrier ------------------------------------------------------------------------------

def test_g5_next_group_starts_when_the_slowest_step_of_the_previous_one_ends():
    plan = plan_of("p a, p b, s c, p d, p e")
    result = simulate(plan, {"a": 1, "b": 3, "c": 2, "d": 1, "e": 1})
    assert starts(result) == {"a": 0, "b": 0, "c": 3, "d": 5, "e": 5}
    assert result.decision.phase == SUCCEEDED
    assert result.end_time - T0 == 6


def test_g5_groups_run_in_document_order_not_by_number_value():
    plan = plan_of("pg2 a, pg2 b, pg9 c")
    result = simulate(plan, {"a": 1, "b": 2, "c": 1})
    assert starts(result) == {"a": 0, "b": 0, "c": 2}


def test_g5_barrier_includes_steps_of_the_group_that_use_depends_on():
    """A dependsOn step still belongs to its group; the next group waits for it too."""
    plan = plan_of("s a, s b, s c->a, s d")
    result = simulate(plan, {"a": 1, "b": 1, "c": 5, "d": 1})
    assert starts(result) == {"a": 0, "b": 1, "c": 1, "d": 6}


def test_f6_sequential_steps_never_overlap():
    plan = plan_of([step(f"s{i}") for i in range(6)])
    result = simulate(plan, {f"s{i}": 1 + i % 3 for i in range(6)})
    assert result.start_order == [f"s{i}" for i in range(6)]
    assert result.max_running == 1


# --- D1: dependsOn ---------------------------------------------------------------------------------

def test_d1_depends_on_starts_as_soon_as_its_prerequisites_succeeded():
    plan = plan_of("s a, s b, s c->a")
    result = simulate(plan, {"a": 1, "b": 5, "c": 1})
    assert starts(result) == {"a": 0, "b": 1, "c": 1}


def test_d1_empty_depends_on_starts_at_once_even_in_the_last_group():
    plan = plan_of("s a, s b, s c->")
    result = simulate(plan, {"a": 2, "b": 2, "c": 1})
    assert starts(result)["c"] == 0


def test_d1_waits_for_every_listed_step():
    plan = plan_of("s a->, s b->, s c->, s d->a+c")
    result = simulate(plan, {"a": 1, "b": 9, "c": 4, "d": 1})
    assert starts(result)["d"] == 4


def test_d1_waiting_step_says_what_it_waits_for():
    plan = plan_of("s a, s b->a")
    decision = decide(plan, {"a": StepState(RUNNING, started_at=T0)}, now=T0, started_at=T0)
    assert decision.waiting["b"].reason == "WaitingForPrerequisites"
    assert '"a"' in decision.waiting["b"].message


# --- D3: skips name the upstream step -------------------------------------------------------------

def test_d3_depends_on_a_failed_step_is_skipped_naming_it():
    plan = plan_of("s a->, s b->, s c->a", failurePolicy="Continue")
    result = simulate(plan, fails={"a"})
    c = result.states["c"]
    assert (c.phase, c.reason) == (SKIPPED, "PrerequisiteFailed")
    assert '"a"' in c.message
    assert result.phase("b") == SUCCEEDED


def test_d3_barrier_on_a_failed_step_is_skipped_naming_it():
    plan = plan_of("p a, p b, s c", failurePolicy="Continue")
    result = simulate(plan, {"a": 1, "b": 1}, fails={"b"})
    c = result.states["c"]
    assert (c.phase, c.reason) == (SKIPPED, "PrerequisiteFailed")
    assert '"b"' in c.message and '"a"' not in c.message


def test_d3_skips_propagate_and_name_the_skipped_step():
    plan = plan_of("s a, s b, s c->b", failurePolicy="Continue")
    result = simulate(plan, fails={"a"})
    assert result.states["b"].reason == "PrerequisiteFailed"
    c = result.states["c"]
    assert (c.phase, c.reason) == (SKIPPED, "PrerequisiteSkipped")
    assert '"b"' in c.message and "skipped" in c.message


def test_d3_continue_on_error_prerequisite_counts_as_succeeded():
    steps = [step("a", continueOnError=True), step("b", depends_on=["a"]), step("c")]
    result = simulate(plan_of(steps), fails={"a"})
    assert result.phases() == {"a": FAILED, "b": SUCCEEDED, "c": SUCCEEDED}
    assert result.decision.phase == SUCCEEDED
    assert '"a"' in result.decision.message and "continueOnError" in result.decision.message


# --- C1: the per-workflow cap ---------------------------------------------------------------------

def test_c1_cap_holds_and_waiting_steps_start_in_document_order():
    names = list("abcdefg")
    plan = plan_of(", ".join(f"p {n}" for n in names), maxConcurrency=2)
    durations = dict(zip(names, [3, 1, 2, 1, 1, 2, 1], strict=True))
    result = simulate(plan, durations)
    assert result.max_running == 2
    assert result.start_order == names
    intervals = [(i.start, i.end) for i in result.intervals.values()]
    assert max_overlap(intervals) == 2


def test_c1_steps_beyond_the_cap_are_pending_waiting_for_slot():
    plan = plan_of("p a, p b, p c, p d", maxConcurrency=2)
    decision = decide(plan, {}, now=T0, started_at=T0)
    assert decision.start == ("a", "b")
    assert {n: v.reason for n, v in decision.waiting.items()} == {
        "c": "WaitingForSlot", "d": "WaitingForSlot"}
    assert "maxConcurrency 2" in decision.waiting["c"].message
    assert "2 waiting for a slot" in decision.message


def test_c1_cap_counts_running_steps_and_can_be_overridden():
    plan = plan_of("p a, p b, p c, p d", maxConcurrency=2)
    running = {"a": StepState(RUNNING, started_at=T0)}
    assert decide(plan, running, now=T0, started_at=T0).start == ("b",)
    assert decide(plan, running, now=T0, started_at=T0, max_concurrency=3).start == ("b", "c")


def test_c1_default_cap_is_five():
    plan = plan_of(", ".join(f"p s{i}" for i in range(12)))
    assert simulate(plan).max_running == 5


def test_c1_a_ready_depends_on_step_takes_its_place_in_document_order():
    """Slots go in document order among ready steps, whatever made them ready."""
    plan = plan_of("s x->, p a->x, p b->x, p c->", maxConcurrency=1)
    result = simulate(plan, {"x": 1, "c": 1, "a": 1, "b": 1})
    assert result.start_order == ["x", "a", "b", "c"]


# --- F1: StopAfterGroup, exactly as DESIGN.md -----------------------------------------------------

def f1_result():
    # groups: [z] [a b c d] [y] [w]; a-d and w may start at once; cap 3
    plan = plan_of("s z, p a->, p b->, p c->, p d->, s y, s w->", maxConcurrency=3)
    durations = {"z": 5, "a": 1, "b": 3, "c": 1, "d": 1, "y": 1, "w": 1}
    return simulate(plan, durations, fails={"a", "b"})


def test_f1_running_steps_outside_the_group_finish():
    result = f1_result()
    assert result.states["z"].phase == SUCCEEDED
    assert ends(result)["z"] == 5
    assert not result.decisions[-1][1].cancel


def test_f1_rest_of_the_failed_group_still_runs_including_steps_waiting_for_a_slot():
    result = f1_result()
    assert starts(result) == {"z": 0, "a": 0, "b": 0, "c": 1, "d": 2}
    assert result.phase("c") == SUCCEEDED and result.phase("d") == SUCCEEDED


def test_f1_nothing_else_starts_and_never_started_steps_end_skipped():
    result = f1_result()
    w, y = result.states["w"], result.states["y"]
    assert (w.phase, w.reason) == (SKIPPED, "WorkflowFailed")
    assert '"a"' in w.message and "StopAfterGroup" in w.message
    assert (y.phase, y.reason) == (SKIPPED, "PrerequisiteFailed")
    assert '"a"' in y.message
    assert set(result.intervals) == {"z", "a", "b", "c", "d"}


def test_f1_workflow_fails_only_once_nothing_runs_and_names_every_failed_step():
    result = f1_result()
    phases = [(t - T0, d.phase) for t, d in result.decisions]
    assert all(p == RUNNING for t, p in phases if t < 5)
    assert result.decision.phase == FAILED and result.end_time - T0 == 5
    assert result.decision.reason == "StepsFailed"
    assert '"a"' in result.decision.message and '"b"' in result.decision.message


def test_f1_message_names_every_failed_step_even_when_many_fail():
    names = [f"shard-{i:02d}" for i in range(12)]
    plan = plan_of([step(n, parallel=True) for n in names], maxConcurrency=12)
    result = simulate(plan, fails=set(names))
    assert all(f'"{n}"' in result.decision.message for n in names)
    assert "more" not in result.decision.message


def test_f1_a_failure_in_a_later_group_does_not_reopen_an_earlier_one():
    plan = plan_of("p a, p b, s c", maxConcurrency=1)
    result = simulate(plan, fails={"a"})
    assert result.phases() == {"a": FAILED, "b": SUCCEEDED, "c": SKIPPED}


# --- F2: FailFast ---------------------------------------------------------------------------------

def test_f2_fail_fast_cancels_running_steps_and_starts_nothing():
    plan = plan_of("p a, p b, p c, s d", failurePolicy="FailFast", maxConcurrency=2)
    result = simulate(plan, {"a": 1, "b": 3, "c": 3}, fails={"a"})
    b = result.states["b"]
    assert (b.phase, b.reason) == (CANCELLED, "FailFast")
    assert '"a"' in b.message
    assert ends(result)["b"] == 1
    assert result.phase("c") == SKIPPED and result.phase("d") == SKIPPED
    assert set(result.intervals) == {"a", "b"}
    assert result.decision.phase == FAILED and result.end_time - T0 == 1
    assert '"a"' in result.decision.message


def test_f2_fail_fast_ignores_continue_on_error_failures():
    steps = [step("a", parallel=True, continueOnError=True), step("b", parallel=True), step("c")]
    plan = plan_of(steps, failurePolicy="FailFast")
    result = simulate(plan, {"a": 1, "b": 3}, fails={"a"})
    assert result.phases() == {"a": FAILED, "b": SUCCEEDED, "c": SUCCEEDED}
    assert result.decision.phase == SUCCEEDED


# --- F3: Continue ---------------------------------------------------------------------------------

def test_f3_continue_runs_every_step_that_does_not_depend_on_the_failure():
    plan = plan_of("p a, p b, s c, s d->b, s e->, s f", failurePolicy="Continue")
    result = simulate(plan, fails={"a"})
    assert result.phases() == {"a": FAILED, "b": SUCCEEDED, "c": SKIPPED, "d": SUCCEEDED,
                               "e": SUCCEEDED, "f": SUCCEEDED}
    assert result.decision.phase == FAILED
    assert '"a"' in result.decision.message


def test_f3_continue_keeps_the_rest_of_the_failed_group_and_other_branches():
    plan = plan_of("s a->, s b->a, s c->, s d->c", failurePolicy="Continue")
    result = simulate(plan, fails={"a"})
    assert result.phases() == {"a": FAILED, "b": SKIPPED, "c": SUCCEEDED, "d": SUCCEEDED}


# --- F4: continueOnError --------------------------------------------------------------------------

def test_f4_continue_on_error_records_the_failure_but_the_workflow_succeeds():
    steps = [step("a", continueOnError=True), step("b")]
    result = simulate(plan_of(steps), fails={"a"})
    assert result.states["a"].phase == FAILED and result.states["a"].exit_code == 1
    assert result.phase("b") == SUCCEEDED
    assert result.decision.phase == SUCCEEDED


def test_f4_continue_on_error_does_not_trigger_stop_after_group():
    steps = [step("a", parallel=True, continueOnError=True), step("b", parallel=True), step("c")]
    result = simulate(plan_of(steps), fails={"a"})
    assert result.phases() == {"a": FAILED, "b": SUCCEEDED, "c": SUCCEEDED}


# --- F5: workflow timeout -------------------------------------------------------------------------

def test_f5_timeout_stops_like_fail_fast_with_reason_timeout():
    plan = plan_of("s a, s b, s c", timeoutSeconds=10)
    result = simulate(plan, {"a": 4, "b": 20, "c": 1})
    b, c = result.states["b"], result.states["c"]
    assert (b.phase, b.reason) == (CANCELLED, "Timeout")
    assert (c.phase, c.reason) == (SKIPPED, "Timeout")
    assert ends(result)["b"] == 10
    assert result.decision.phase == FAILED and result.decision.reason == "Timeout"
    assert "10s" in result.decision.message


def test_f5_decisions_ask_to_be_woken_at_the_deadline():
    plan = plan_of("s a", timeoutSeconds=30)
    decision = decide(plan, {"a": StepState(RUNNING, started_at=T0)}, now=T0 + 1, started_at=T0)
    assert decision.wake_at == T0 + 30
    done = decide(plan, {"a": StepState(SUCCEEDED, started_at=T0, finished_at=T0 + 2)},
                  now=T0 + 2, started_at=T0)
    assert done.phase == SUCCEEDED and done.wake_at is None


def test_f5_a_run_finished_before_the_deadline_is_not_a_timeout_later():
    plan = plan_of("s a", timeoutSeconds=5)
    states = {"a": StepState(SUCCEEDED, started_at=T0, finished_at=T0 + 1)}
    decision = decide(plan, states, now=T0 + 100, started_at=T0)
    assert decision.phase == SUCCEEDED


# --- suspend and interrupt ------------------------------------------------------------------------

def suspend_at(t):
    return (T0 + t, lambda sim: setattr(sim, "suspended", True))


def resume_at(t):
    return (T0 + t, lambda sim: setattr(sim, "suspended", False))


def test_suspend_lets_running_steps_finish_and_starts_nothing_new():
    plan = plan_of("p a, p b, s c, s d")
    result = simulate(plan, {"a": 1, "b": 2}, events=[suspend_at(0.5), resume_at(10)])
    assert ends(result)["a"] == 1 and ends(result)["b"] == 2
    assert starts(result)["c"] == 10 and starts(result)["d"] == 11
    suspended = [d for t, d in result.decisions if T0 + 0.5 <= t < T0 + 10]
    assert suspended and all(d.phase == SUSPENDED and not d.start for d in suspended)
    assert result.decision.phase == SUCCEEDED


def test_suspended_from_the_start_runs_nothing():
    plan = plan_of("p a, p b")
    decision = decide(plan, {}, now=T0, started_at=T0, suspended=True)
    assert decision.start == ()
    assert decision.phase == SUSPENDED
    assert {v.reason for v in decision.waiting.values()} == {SUSPENDED}


def test_interrupt_cancels_running_and_skips_the_rest():
    plan = plan_of("p a, p b, s c")
    stop = Verdict("Interrupted", "interrupted by the user")
    result = simulate(plan, {"a": 5, "b": 5},
                      events=[(T0 + 1, lambda sim: setattr(sim, "stop", stop))])
    assert result.phases() == {"a": CANCELLED, "b": CANCELLED, "c": SKIPPED}
    assert result.decision.phase == FAILED and result.decision.reason == "Interrupted"


# --- workflow phase and progress ------------------------------------------------------------------

def test_progress_counts_terminal_steps():
    plan = plan_of("s a, s b, s c")
    states = {"a": StepState(SUCCEEDED), "b": StepState(RUNNING)}
    decision = decide(plan, states, now=T0, started_at=T0)
    assert decision.progress == "1/3" and decision.phase == RUNNING


def test_nothing_to_start_because_of_the_global_cap_is_pending():
    plan = plan_of("p a, p b")
    decision = decide(plan, {}, now=T0, started_at=None, global_slots=0)
    assert decision.phase == PENDING and decision.start == ()
    assert {v.reason for v in decision.waiting.values()} == {"WaitingForSlot"}
    assert "operator-wide" in decision.waiting["a"].message


def test_global_slots_limit_starts_in_document_order():
    plan = plan_of("p a, p b, p c")
    decision = decide(plan, {}, now=T0, started_at=T0, global_slots=2)
    assert decision.start == ("a", "b")
    assert decision.waiting["c"].reason == "WaitingForSlot"


# --- determinism (level-triggered) ----------------------------------------------------------------

def test_same_observations_give_equal_decisions():
    plan = plan_of("p a, p b, s c->a, pg2 d, pg2 e, s f", maxConcurrency=2)
    states = {"a": StepState(FAILED, started_at=T0, finished_at=T0 + 1),
              "b": StepState(RUNNING, started_at=T0)}
    first = decide(plan, states, now=T0 + 1, started_at=T0)
    assert decide(plan, dict(states), now=T0 + 1, started_at=T0) == first
    assert decide(plan, dict(reversed(states.items())), now=T0 + 1, started_at=T0) == first


def test_replaying_an_unapplied_decision_gives_the_same_starts():
    """A restarted operator that never recorded the starts gets them again, not different ones."""
    plan = plan_of("p a, p b, p c", maxConcurrency=2)
    assert decide(plan, {}, now=T0, started_at=T0).start == decide(plan, {}, now=T0 + 5, started_at=T0).start


def test_simulations_are_reproducible():
    plan = plan_of("p a, p b, s c->a, pg2 d, pg2 e, s f", maxConcurrency=2, failurePolicy="Continue")
    durations = {"a": 2, "b": 1, "c": 3, "d": 1, "e": 2, "f": 1}
    one, two = simulate(plan, durations, fails={"d"}), simulate(plan, durations, fails={"d"})
    assert one.states == two.states and one.start_order == two.start_order


# --- C2: SlotQueue, first come first served -------------------------------------------------------

def test_slot_queue_unlimited_grants_everything():
    queue = SlotQueue(None)
    assert queue.grant("w", ["a", "b", "c"], running=0) == 3


def test_slot_queue_grants_in_arrival_order_across_workflows():
    queue = SlotQueue(3)
    assert queue.grant("early", ["a", "b"], running=0) == 2
    assert queue.grant("late", [f"s{i}" for i in range(50)], running=0) == 1
    queue.started("early", ["a"])  # early started only one
    assert queue.grant("late", [f"s{i}" for i in range(50)], running=0) == 1
    assert queue.next_in_line() == ["early", "late"]


def test_slot_queue_forget_frees_the_slots_of_a_finished_workflow():
    queue = SlotQueue(2)
    queue.grant("a", ["x", "y"], running=0)
    queue.started("a", ["x", "y"])
    assert queue.grant("b", ["z"], running=0) == 0
    queue.forget("a")
    assert queue.running == 0
    assert queue.grant("b", ["z"], running=0) == 1


def test_a_large_workflow_arriving_later_cannot_starve_an_earlier_one():
    small = plan_of("p a1, p a2, p a3, s a4")
    large = plan_of(", ".join(f"p b{i}" for i in range(40)), maxConcurrency=40)
    for order in (lambda names: names, lambda names: names[::-1]):
        intervals = simulate_fleet([Arrival("small", small, 0.0), Arrival("large", large, 0.5)],
                                   limit=2, reconcile_order=order)
        s = {n: i.start for n, i in intervals["small"].items()}
        # a3 waited since t=0, before any step of the large workflow: it gets the first free slot
        assert (s["a1"], s["a2"], s["a3"]) == (0, 0, 1)
        large_starts = sorted(i.start for i in intervals["large"].values())
        assert large_starts[0] == 1  # the other freed slot; the large one is not shut out either
        # a4 became ready at t=2, after the large workflow's steps: it waits for those, no more
        assert s["a4"] == large_starts[-1]
        everything = [(i.start, i.end) for wf in intervals.values() for i in wf.values()]
        assert max_overlap(everything) == 2


def test_a_workflow_arriving_after_a_large_one_waits_only_for_steps_queued_before_it():
    large = plan_of(", ".join(f"p b{i}" for i in range(6)) + ", "
                    + ", ".join(f"pg2 c{i}" for i in range(6)), maxConcurrency=6)
    small = plan_of("s a1")
    intervals = simulate_fleet([Arrival("large", large, 0.0), Arrival("small", small, 0.5)], limit=2)
    # b0-b5 were queued before a1; a1 goes next, ahead of group 2 (c0-c5), queued later
    assert intervals["small"]["a1"].start == 3
    assert min(i.start for n, i in intervals["large"].items() if n.startswith("c")) >= 3


def test_a_decision_costs_what_changed_not_the_size_of_the_workflow(monkeypatch):
    """With the observations kept across decisions, a pass looks at the steps whose fate may
    change: on a 2,000-step chain it looked at every pending step, twice per step."""
    from stepflow.engine import Observations
    from stepflow.engine.rules import _Pass

    plan = plan_of([step(f"s{i}") for i in range(2000)])
    observed = Observations(plan)
    looked: list[str] = []
    original = _Pass._blocked
    monkeypatch.setattr(_Pass, "_blocked", lambda self, name: looked.append(name) or original(self, name))
    for i in range(1000):  # half the chain has run
        observed[f"s{i}"] = StepState(phase=SUCCEEDED, started_at=1.0, finished_at=2.0)
    looked.clear()
    decision = decide(plan, observed, now=3.0, started_at=0.0)
    assert decision.start == ("s1000",)
    assert len(looked) <= 2, looked
    assert decision.waiting["s1999"].message == 'waiting for "s1998"'  # still answered, when asked
