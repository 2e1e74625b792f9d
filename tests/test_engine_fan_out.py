"""Fan-out in the engine (M3-M5): copies under the caps, one step to everything outside, lists
read from outputs, and what a consumer of a matrix step reads. Driven through the simulator, the
way both executors drive the engine."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from builders import plan_of, step
from simulate import max_overlap, simulate
from stepflow.engine import (
    CANCELLED,
    FAILED,
    MATRIX_EMPTY,
    MATRIX_INVALID,
    SKIPPED,
    SUCCEEDED,
    StepState,
    whole_state,
)
from stepflow.outputs import output_env


def from_output(producer: str = "list", output: str = "items") -> dict:
    return {"fromOutput": {"step": producer, "output": output}}


def listing(items: object) -> dict[str, dict[str, str]]:
    return {"list": {"items": items if isinstance(items, str) else json.dumps(items)}}


def fanned(**matrix_step: object) -> list[dict]:
    return [step("list", outputs=["items"]), step("build", matrix={"svc": from_output()}, **matrix_step),
            step("after")]


def copies_of(result, whole: str) -> list[str]:
    return [n for n in result.start_order if n.startswith(f"{whole}-")]


# --- M3: inside, copies under the caps; outside, one step ---------------------------------

def test_copies_run_concurrently_under_max_concurrency():
    plan = plan_of([step("m", matrix={"r": ["a", "b", "c"], "t": ["x", "y"]})], maxConcurrency=2)
    result = simulate(plan)
    assert result.max_running == 2
    assert max_overlap((i.start, i.end) for i in result.intervals.values()) == 2
    assert result.decision.phase == SUCCEEDED and result.decision.progress == "6/6"


def test_the_next_group_and_a_depends_on_wait_for_every_copy():
    plan = plan_of([step("m", matrix={"r": ["a", "b", "c"]}), step("next"),
                    step("d", depends_on=["m"])])
    result = simulate(plan, {"m-0": 1.0, "m-1": 5.0, "m-2": 2.0})
    last_copy_end = max(result.intervals[f"m-{i}"].end for i in range(3))
    assert result.intervals["next"].start >= last_copy_end
    assert result.intervals["d"].start >= last_copy_end


def test_a_failed_copy_fails_the_step_and_what_waits_for_it():
    plan = plan_of([step("m", matrix={"r": ["a", "b"]}), step("after")])
    result = simulate(plan, fails={"m-1"})
    whole = whole_state(plan, "m", result.states)
    assert (whole.phase, whole.reason) == (FAILED, "CopiesFailed") and '"m-1"' in whole.message
    assert result.phase("after") == SKIPPED and result.decision.phase == FAILED


def test_continue_on_error_applies_to_each_copy():
    plan = plan_of([step("m", matrix={"r": ["a", "b"]}, continueOnError=True), step("after")])
    result = simulate(plan, fails={"m-0"})
    assert result.phase("m-1") == SUCCEEDED and result.phase("after") == SUCCEEDED
    assert result.decision.phase == SUCCEEDED


def test_fail_fast_cancels_the_running_copies():
    plan = plan_of([step("m", matrix={"r": ["a", "b", "c"]})], failurePolicy="FailFast")
    result = simulate(plan, {"m-0": 1.0, "m-1": 10.0, "m-2": 10.0}, fails={"m-0"})
    assert [result.states[f"m-{i}"].phase for i in range(3)] == [FAILED, CANCELLED, CANCELLED]
    assert result.states["m-1"].reason == "FailFast"


def test_stop_after_group_lets_the_other_copies_finish():
    plan = plan_of([step("m", matrix={"r": ["a", "b", "c"]}), step("after")], maxConcurrency=1)
    result = simulate(plan, fails={"m-0"})
    assert [result.phase(f"m-{i}") for i in range(3)] == [FAILED, SUCCEEDED, SUCCEEDED]
    assert result.phase("after") == SKIPPED


def test_a_false_condition_skips_every_copy_and_the_whole():
    plan = plan_of([step("gate", outputs=["go"]),
                    step("m", matrix={"r": ["a", "b"]}, when="steps.gate.outputs.go == 'yes'"),
                    step("after")])
    result = simulate(plan, outputs={"gate": {"go": "no"}})
    assert {result.states[f"m-{i}"].reason for i in range(2)} == {"ConditionFalse"}
    assert whole_state(plan, "m", result.states).phase == SKIPPED
    assert result.phase("after") == SUCCEEDED  # W3: a condition's skip counts as success


def test_a_condition_is_evaluated_once_before_reading_the_list():
    plan = plan_of([step("list", outputs=["items"]),
                    step("build", matrix={"svc": from_output()}, when="false")])
    result = simulate(plan, outputs=listing("not even json"))
    build = result.states["build"]
    assert (build.phase, build.reason) == (SKIPPED, "ConditionFalse")  # not MatrixInvalid
    assert result.decision.phase == SUCCEEDED


def test_a_condition_sees_the_phase_of_the_whole():
    plan = plan_of([step("m", matrix={"r": ["a", "b"]}, continueOnError=True),
                    step("alert", when="steps.m.phase == 'Failed'")])
    assert simulate(plan, fails={"m-1"}).phase("alert") == SUCCEEDED
    assert simulate(plan).phase("alert") == SKIPPED


# --- M4: a list from an output --------------------------------------------------------------

def test_a_list_from_an_output_is_read_once_the_step_is_ready():
    plan = plan_of(fanned())
    result = simulate(plan, outputs=listing(["api", "web", "db"]))
    assert copies_of(result, "build") == ["build-0", "build-1", "build-2"]
    assert result.phase("after") == SUCCEEDED and result.decision.progress == "5/5"
    assert len(result.expansions) == 1
    at, expansion = result.expansions[0]
    assert at >= result.intervals["list"].end
    assert list(expansion["build"]) == [{"svc": "api"}, {"svc": "web"}, {"svc": "db"}]


def test_a_list_that_is_not_an_array_of_strings_fails_the_step_and_names_the_output():
    for text in ("not json", '{"a": 1}', '["a", 1]', json.dumps([str(i) for i in range(257)])):
        result = simulate(plan_of(fanned()), outputs=listing(text))
        build = result.states["build"]
        assert (build.phase, build.reason) == (FAILED, MATRIX_INVALID), text
        assert 'output "items" of step "list"' in build.message
        assert result.phase("after") == SKIPPED and result.decision.phase == FAILED
        assert not copies_of(result, "build")


def test_an_empty_list_skips_the_step_as_a_success_and_its_outputs_are_empty_arrays():
    steps = [*fanned(outputs=["image"]), step("report", env=[
        {"name": "IMAGES", "valueFrom": {"stepOutput": {"step": "build", "output": "image"}}}],
        when="steps.build.outputs.image == '[]'")]
    plan = plan_of(steps)
    result = simulate(plan, outputs=listing([]))
    build = result.states["build"]
    assert (build.phase, build.reason) == (SKIPPED, MATRIX_EMPTY)
    assert result.phase("after") == SUCCEEDED and result.decision.phase == SUCCEEDED
    assert result.phase("report") == SUCCEEDED
    assert output_env(plan, plan.step_by_name["report"], result.states) == {"IMAGES": "[]"}


def test_a_list_from_an_output_keeps_to_1000_steps():
    many = [step(f"s{i}", parallel=True) for i in range(900)]
    plan = plan_of([*many, step("list", outputs=["items"]), step("build", matrix={"svc": from_output()})])
    result = simulate(plan, outputs=listing([str(i) for i in range(200)]), durations={})
    assert result.states["build"].reason == MATRIX_INVALID and "1,000" in result.states["build"].message


def test_a_list_from_a_step_that_did_not_succeed_is_unavailable():
    plan = plan_of([step("list", outputs=["items"], continueOnError=True),
                    step("build", matrix={"svc": from_output()})])
    result = simulate(plan, fails={"list"})
    assert result.states["build"].reason == "OutputUnavailable"


def test_a_written_list_and_one_from_an_output_make_their_product():
    plan = plan_of([step("list", outputs=["items"]),
                    step("build", matrix={"svc": from_output(), "arch": ["amd64", "arm64"]})])
    result = simulate(plan, outputs=listing(["api", "web"]))
    values = [dict(result_plan_step.matrix_values) for result_plan_step in result.plan.steps[1:]]
    assert values == [{"svc": "api", "arch": "amd64"}, {"svc": "api", "arch": "arm64"},
                      {"svc": "web", "arch": "amd64"}, {"svc": "web", "arch": "arm64"}]


# --- M5: what a consumer of a matrix step reads ---------------------------------------------------

def test_a_consumer_reads_a_json_array_of_the_copies_values_in_copy_order():
    plan = plan_of([step("m", matrix={"r": ["a", "b", "c"]}, outputs=["url"]),
                    step("report", env=[{"name": "URLS", "valueFrom": {"stepOutput": {"step": "m",
                                                                                     "output": "url"}}}],
                         when="steps.m.outputs.url.startsWith('[')")])
    outputs = {f"m-{i}": {"url": f"https://{r}"} for i, r in enumerate("abc")}
    durations = {"m-0": 3.0, "m-1": 1.0, "m-2": 2.0}  # they end out of order
    result = simulate(plan, durations, outputs=outputs)
    assert result.phase("report") == SUCCEEDED
    env = output_env(plan, plan.step_by_name["report"], result.states)
    assert json.loads(env["URLS"]) == ["https://a", "https://b", "https://c"]


def test_a_whole_is_running_until_every_copy_is_over():
    plan = plan_of([step("m", matrix={"r": ["a", "b"]})])
    states = {"m-0": StepState(phase=SUCCEEDED, started_at=1, finished_at=2),
              "m-1": StepState(phase="Running", started_at=1)}
    whole = whole_state(plan, "m", states)
    assert whole.phase == "Running" and whole.finished_at is None and "1 of 2" in whole.message


# --- properties -----------------------------------------------------------------------------------

@st.composite
def fan_outs(draw):
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
    matrix = {f"k{i}": [f"v{j}" for j in range(n)] for i, n in enumerate(sizes)}
    from_list = draw(st.booleans())
    items = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=5))
    steps = [step("list", outputs=["items"]), step("side", parallel=True),
             step("m", matrix={**matrix, **({"svc": from_output()} if from_list else {})},
                  parallel=True, continueOnError=draw(st.booleans())),
             step("after"), step("d", depends_on=["m"])]
    spec = {"maxConcurrency": draw(st.integers(1, 4)),
            "failurePolicy": draw(st.sampled_from(["StopAfterGroup", "FailFast", "Continue"]))}
    plan = plan_of(steps, **spec)
    durations = draw(st.dictionaries(st.sampled_from([f"m-{i}" for i in range(40)] + ["side"]),
                                     st.sampled_from([0.5, 1.0, 2.0, 3.0])))
    fails = draw(st.sets(st.sampled_from([f"m-{i}" for i in range(40)]), max_size=3))
    return plan, durations, fails, listing(items), spec["maxConcurrency"]


@settings(max_examples=120, deadline=None)
@given(fan_outs())
def test_copies_never_exceed_the_cap_and_dependants_wait_for_every_copy(case):
    plan, durations, fails, outputs, cap = case
    result = simulate(plan, durations, fails, outputs=outputs, check_determinism=True)
    assert not result.stuck
    assert result.max_running <= cap
    copies = [n for n in result.states if n.startswith("m-")]
    for time, name, before in result.starts:
        if name in ("after", "d"):
            assert all(before[c].phase in (SUCCEEDED, FAILED, SKIPPED, CANCELLED) for c in copies)
            assert all(result.intervals[c].end is None or result.intervals[c].end <= time
                       for c in copies if c in result.intervals)


@settings(max_examples=60, deadline=None)
@given(fan_outs())
def test_the_expansion_is_the_same_every_time(case):
    plan, durations, fails, outputs, _ = case
    first = simulate(plan, durations, fails, outputs=outputs)
    second = simulate(plan, durations, fails, outputs=outputs)
    assert first.expansions == second.expansions
    assert [s.name for s in first.plan.steps] == [s.name for s in second.plan.steps]
    assert first.start_order == second.start_order


def test_a_list_whose_copies_values_would_be_too_large_for_status_is_invalid():
    plan = plan_of([step("list", outputs=["items"]),
                    step("build", matrix={"svc": from_output(), "pad": ["p" * 20_000, "q" * 20_000]})])
    result = simulate(plan, outputs=listing(["a", "b"]))
    assert result.states["build"].reason == MATRIX_INVALID and "65,536" in result.states["build"].message


def test_a_whole_whose_run_was_stopped_midway_is_not_a_success():
    plan = plan_of([step("m", matrix={"r": ["a", "b"]})])
    states = {"m-0": StepState(phase=SUCCEEDED, started_at=1, finished_at=2),
              "m-1": StepState(phase=SKIPPED, reason="Interrupted", message="interrupted by the user")}
    whole = whole_state(plan, "m", states)
    assert (whole.phase, whole.reason) == (SKIPPED, "Interrupted") and "1 of 2 copies" in whole.message
    assert whole.outputs == {}


def test_a_fan_out_over_the_outputs_of_another_fan_out():
    plan = plan_of([step("find", matrix={"repo": ["a", "b"]}, outputs=["svc"]),
                    step("build", matrix={"svc": from_output("find", "svc")})])
    result = simulate(plan, outputs={"find-0": {"svc": "api"}, "find-1": {"svc": "web"}})
    assert [dict(s.matrix_values) for s in result.plan.steps[2:]] == [{"svc": "api"}, {"svc": "web"}]
    assert result.decision.phase == SUCCEEDED and result.decision.progress == "4/4"


def test_a_run_whose_only_skip_is_an_empty_list_says_so():
    result = simulate(plan_of(fanned()), outputs=listing([]))
    assert "1 skipped by an empty list" in result.decision.message
