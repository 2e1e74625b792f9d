"""Properties of conditions, outputs and finally steps over random workflows (hypothesis):
finally steps always run once the main steps are over; a condition's skip never blocks a
dependent; outputs are read only from finished prerequisites."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from builders import step, workflow
from simulate import simulate
from stepflow.engine import SKIPPED, SUCCEEDED, TERMINAL
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def runs(draw):
    n = draw(st.integers(1, 8))
    names = [f"s{i}" for i in range(n)]
    steps = []
    for i, name in enumerate(names):
        fields: dict = {"outputs": ["o"]}
        if draw(st.booleans()):
            fields["parallel"] = True
        if i and draw(st.integers(0, 2)) == 0:
            fields["depends_on"] = draw(st.lists(st.sampled_from(names[:i]), max_size=2, unique=True))
        if draw(st.integers(0, 2)) == 0:
            fields["when"] = draw(st.sampled_from(["true", "false"]))
        if i and draw(st.integers(0, 3)) == 0:
            producer = draw(st.sampled_from(names[:i]))
            fields["env"] = [{"name": "V", "valueFrom": {"stepOutput": {"step": producer, "output": "o"}}}]
        if draw(st.integers(0, 4)) == 0:
            fields["continueOnError"] = True
        steps.append(step(name, **fields))
    final = [step(f"f{i}", parallel=draw(st.booleans()),
                  when=draw(st.sampled_from([None, "workflow.failed", "true"])))
             for i in range(draw(st.integers(1, 3)))]
    doc = workflow(*steps, failurePolicy=draw(st.sampled_from(["StopAfterGroup", "FailFast", "Continue"])),
                   maxConcurrency=draw(st.integers(1, 3)))
    doc["spec"]["finally"] = [{k: v for k, v in s.items() if v is not None} for s in final]
    try:
        plan = compile_workflow(doc)
    except SpecError:
        assume(False)  # an output read from a step that is not a prerequisite: refused, fine
        raise
    fails = frozenset(draw(st.lists(st.sampled_from(names + [s["name"] for s in final]), max_size=3)))
    durations = {s.name: draw(st.sampled_from([0.5, 1.0, 2.0])) for s in plan.steps}
    return plan, fails, durations


def run(case):
    plan, fails, durations = case
    return plan, simulate(plan, durations, fails, outputs={s.name: {"o": "x"} for s in plan.steps})


@SETTINGS
@given(runs())
def test_finally_steps_always_run_once_the_main_steps_are_over(case):
    plan, result = run(case)
    assert not result.stuck and result.decision.finished
    main_ends = [result.states[s.name].finished_at for s in plan.spec.steps]
    for final in plan.spec.finally_steps:
        state = result.states[final.name]
        assert state.phase in TERMINAL
        if final.name in result.intervals:
            assert all(end is not None and end <= result.intervals[final.name].start for end in main_ends)
        elif state.phase == SKIPPED:
            assert state.reason in ("ConditionFalse", "PrerequisiteFailed", "PrerequisiteSkipped")


@SETTINGS
@given(runs())
def test_a_condition_false_skip_never_blocks_a_dependent(case):
    _, result = run(case)
    condition_skipped = {n for n, s in result.states.items() if s.reason == "ConditionFalse"}
    for state in result.states.values():
        if state.reason in ("PrerequisiteSkipped", "PrerequisiteFailed"):
            assert not any(f'"{n}"' in state.message for n in condition_skipped), state


@SETTINGS
@given(runs())
def test_outputs_are_read_only_from_finished_prerequisites(case):
    plan, result = run(case)
    for when, name, before in result.starts:
        for _, producer, _ in plan.step_by_name[name].output_sources:
            assert before[producer].phase == SUCCEEDED and before[producer].finished_at <= when
