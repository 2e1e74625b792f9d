"""Properties of the engine over random valid workflows (hypothesis).

Workflows mix sequential, parallel, numbered and dependsOn steps (including
``dependsOn: []`` and, now and then, a dependency on a later step); durations,
outcomes, continueOnError, failure policies, caps and timeouts are random too.
Each one is run to the end in the discrete-event simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from builders import step, workflow
from simulate import Result, simulate
from stepflow.engine import FAILED, SKIPPED, SUCCEEDED, StepState
from stepflow.plan import Plan, compile_workflow
from stepflow.spec import SpecError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    plan: Plan
    durations: dict[str, float]
    fails: frozenset[str]

    def run(self, **kwargs) -> Result:
        return simulate(self.plan, self.durations, self.fails, **kwargs)


@st.composite
def cases(draw, policies=("StopAfterGroup", "FailFast", "Continue")) -> Case:
    n = draw(st.integers(1, 12))
    names = [f"s{i}" for i in range(n)]
    steps, number, previous_kind = [], 0, None
    for i, name in enumerate(names):
        kind = draw(st.sampled_from(["sequential", "parallel", "numbered"]))
        fields: dict = {}
        if kind == "parallel":
            fields["parallel"] = True
        elif kind == "sequential" and draw(st.booleans()):
            fields["parallel"] = False
        elif kind == "numbered":
            # continue the current number, or open a higher one (gaps allowed): always valid G6
            if previous_kind != "numbered" or draw(st.booleans()):
                number += draw(st.integers(1, 3))
            fields["group"] = number
            if draw(st.booleans()):
                fields["parallel"] = True
        previous_kind = kind
        deps_kind = draw(st.sampled_from(["none", "none", "earlier", "empty", "any"]))
        if deps_kind == "earlier" and i:
            fields["depends_on"] = draw(st.lists(st.sampled_from(names[:i]), max_size=3, unique=True))
        elif deps_kind == "empty":
            fields["depends_on"] = []
        elif deps_kind == "any" and n > 1:
            others = [m for m in names if m != name]
            fields["depends_on"] = draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
        if draw(st.integers(0, 4)) == 0:
            fields["continueOnError"] = True
        steps.append(step(name, **fields))
    spec = {
        "failurePolicy": draw(st.sampled_from(policies)),
        "maxConcurrency": draw(st.integers(1, 4)),
    }
    if draw(st.integers(0, 3)) == 0:
        spec["timeoutSeconds"] = draw(st.integers(1, 15))
    try:
        plan = compile_workflow(workflow(*steps, **spec))
    except SpecError as exc:
        # only forward dependencies may be invalid (a cycle); anything else is a generator bug
        assert all("cycle" in e.message for e in exc.errors), exc.errors
        assume(False)
        raise
    durations = {m: draw(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0])) for m in names}
    fails = frozenset(draw(st.lists(st.sampled_from(names), max_size=min(n, 4), unique=True)))
    return Case(plan, durations, fails)


def tolerated(plan: Plan, name: str, state: StepState) -> bool:
    return state.phase == SUCCEEDED or (state.phase == FAILED and plan.step_by_name[name].continue_on_error)


@SETTINGS
@given(cases(), st.one_of(st.none(), st.integers(1, 3)))
def test_cap_is_never_exceeded(case, override):
    """spec.maxConcurrency, or the executor's override of it (`run --max-concurrency`)."""
    result = case.run(max_concurrency=override)
    assert result.max_running <= (override or case.plan.spec.max_concurrency)


@SETTINGS
@given(cases())
def test_no_step_starts_before_its_prerequisites_succeeded(case):
    result = case.run()
    for _, name, before in result.starts:
        for prerequisite in case.plan.prerequisites(name):
            state = before.get(prerequisite, StepState())
            assert tolerated(case.plan, prerequisite, state), (name, prerequisite, state.phase)


@SETTINGS
@given(cases())
def test_every_step_ends_terminal_and_the_workflow_succeeds_or_fails(case):
    result = case.run()
    assert not result.stuck
    assert result.decision.phase in (SUCCEEDED, FAILED)
    assert set(result.states) == set(case.plan.step_by_name)
    assert all(s.phase in ("Succeeded", "Failed", "Skipped", "Cancelled") for s in result.states.values())
    assert result.decision.progress == f"{len(result.states)}/{len(result.states)}"
    all_fine = all(tolerated(case.plan, n, s) for n, s in result.states.items())
    assert (result.decision.phase == SUCCEEDED) == all_fine


@SETTINGS
@given(cases())
def test_decisions_are_deterministic(case):
    first = case.run(check_determinism=True)
    second = case.run()
    assert [d for _, d in first.decisions] == [d for _, d in second.decisions]
    assert first.states == second.states


@SETTINGS
@given(cases(policies=("StopAfterGroup",)))
def test_stop_after_group_starts_nothing_outside_a_failed_steps_group(case):
    result = case.run()
    plan = case.plan
    for _, name, before in result.starts:
        failed_groups = {plan.group_of[n] for n, s in before.items()
                         if s.phase == FAILED and not plan.step_by_name[n].continue_on_error}
        if failed_groups:
            assert plan.group_of[name] in failed_groups, (name, failed_groups)


@SETTINGS
@given(cases(policies=("FailFast",)))
def test_fail_fast_starts_nothing_after_the_first_failure(case):
    result = case.run()
    plan = case.plan
    for _, name, before in result.starts:
        assert not any(s.phase == FAILED and not plan.step_by_name[n].continue_on_error
                       for n, s in before.items()), name


@SETTINGS
@given(cases())
def test_prerequisite_skips_name_an_upstream_step_that_did_not_succeed(case):
    result = case.run()
    for name, state in result.states.items():
        if state.phase == SKIPPED and state.reason in ("PrerequisiteFailed", "PrerequisiteSkipped"):
            [upstream] = re.findall(r'"([^"]+)"', state.message)
            assert upstream in case.plan.prerequisites(name)
            assert not tolerated(case.plan, upstream, result.states[upstream])
