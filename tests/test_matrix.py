"""The matrix field and its expansion in the plan (M1, M2): what is refused, with its path, and
what the copies are."""

from __future__ import annotations

import pytest

from builders import plan_of, step, workflow
from stepflow.matrix import combinations, expand, list_from_output
from stepflow.matrix_spec import Axis
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError


def errors_of(*steps: dict, **spec) -> list[str]:
    with pytest.raises(SpecError) as caught:
        compile_workflow(workflow(*steps, **spec))
    return [str(e) for e in caught.value.errors]


def from_output(producer: str = "list", output: str = "items") -> dict:
    return {"fromOutput": {"step": producer, "output": output}}


# --- M1: the product, first name slowest ---------------------------------------------------

def test_the_product_varies_the_first_name_slowest():
    axes = (Axis("region", values=("eu", "us")), Axis("tier", values=("a", "b", "c")))
    assert combinations(axes) == [
        {"region": "eu", "tier": "a"}, {"region": "eu", "tier": "b"}, {"region": "eu", "tier": "c"},
        {"region": "us", "tier": "a"}, {"region": "us", "tier": "b"}, {"region": "us", "tier": "c"}]


def test_a_written_matrix_is_expanded_in_place_of_its_step():
    plan = plan_of([step("build"), step("deploy", matrix={"region": ["eu", "us", "ap"]}), step("smoke")])
    assert plan.groups == (("build",), ("deploy-0", "deploy-1", "deploy-2"), ("smoke",))
    assert [s.name for s in plan.steps] == ["build", "deploy-0", "deploy-1", "deploy-2", "smoke"]
    assert [s.index for s in plan.steps] == [0, 1, 2, 3, 4]  # document order, for C1's slots
    assert plan.prerequisites("smoke") == ("deploy-0", "deploy-1", "deploy-2")
    copy = plan.step_by_name["deploy-2"]
    assert (copy.matrix_of, dict(copy.matrix_values), copy.copy_index) == ("deploy", {"region": "ap"}, 2)
    assert copy.literals == {"region": "ap", "STEPFLOW_MATRIX_INDEX": "2"}
    assert copy.path == "spec.steps[1]"  # an error about a copy points at what the user wrote
    assert plan.matrices["deploy"][1] == ("deploy-0", "deploy-1", "deploy-2")


def test_a_depends_on_the_matrix_step_waits_for_every_copy():
    plan = plan_of([step("deploy", matrix={"r": ["a", "b"]}), step("x", depends_on=["deploy"]),
                    step("y", depends_on=[])])
    assert plan.step_by_name["x"].depends_on == ("deploy-0", "deploy-1")
    assert plan.step_by_name["y"].depends_on == ()


def test_a_sequential_matrix_step_still_runs_its_copies_together():
    plan = plan_of([step("a"), step("m", matrix={"r": ["1", "2"]}), step("b")])
    assert plan.groups[1] == ("m-0", "m-1")


def test_expansion_is_deterministic():
    doc = workflow(step("m", matrix={"b": ["2", "1"], "a": ["x", "y"]}))
    first, second = compile_workflow(doc), compile_workflow(doc)
    assert [(s.name, dict(s.matrix_values)) for s in first.steps] == [
        (s.name, dict(s.matrix_values)) for s in second.steps]
    assert dict(first.step_by_name["m-1"].matrix_values) == {"b": "2", "a": "y"}  # written order


def test_a_matrix_from_an_output_stays_one_step_until_expanded():
    plan = plan_of([step("list", outputs=["items"]), step("build", matrix={"svc": from_output()})])
    assert plan.groups == (("list",), ("build",)) and not plan.matrices
    expanded = expand(plan, {"build": [{"svc": "api"}, {"svc": "web"}]})
    assert expanded.groups == (("list",), ("build-0", "build-1"))
    assert expanded.step_by_name["build-1"].literals["svc"] == "web"


def test_a_plan_in_json_names_each_copy_and_its_values():
    steps = {s["name"]: s for s in plan_of([step("m", matrix={"r": ["eu"]})]).as_json()["steps"]}
    assert steps["m-0"]["matrixOf"] == "m" and steps["m-0"]["matrix"] == {"r": "eu"}


# --- M1: what is refused, with its path ----------------------------------------------------

@pytest.mark.parametrize(("matrix", "path", "words"), [
    ({}, "spec.steps[0].matrix", "at least one list"),
    ({"region": []}, "spec.steps[0].matrix.region", "empty list"),
    ({"region": ["eu", 3]}, "spec.steps[0].matrix.region[1]", "must be a string"),
    ({"region": "eu"}, "spec.steps[0].matrix.region", "must be a list of strings"),
    ({"9lives": ["a"]}, "spec.steps[0].matrix.9lives", "not a matrix name"),
    ({"STEPFLOW_X": ["a"]}, "spec.steps[0].matrix.STEPFLOW_X", "reserved"),
    ({"r": ["a\0b"]}, "spec.steps[0].matrix.r[0]", "NUL"),
    ({"r": {"fromOutput": {"step": "list"}}}, "spec.steps[0].matrix.r.fromOutput.output", "required"),
    ({"r": {"fromOutput": {"step": "a", "output": "o"}, "x": 1}}, "spec.steps[0].matrix.r.x", "unknown"),
    ({"r": [str(i) for i in range(257)]}, "spec.steps[0].matrix.r", "at most 256"),
    ({"a": [str(i) for i in range(16)], "b": [str(i) for i in range(17)]}, "spec.steps[0].matrix",
     "16 x 17 = 272 copies"),
])
def test_a_bad_matrix_is_refused_with_its_path(matrix, path, words):
    found = errors_of(step("deploy", matrix=matrix))
    assert any(e.startswith(f"{path}:") and words in e for e in found), found


def test_copies_whose_names_would_not_fit_are_refused_up_front():
    name = "d" * 61  # d...d-10 has 64 characters
    found = errors_of(step(name, matrix={"r": [str(i) for i in range(11)]}))
    assert any("spec.steps[0].name" in e and "shorten the step's name to 60" in e for e in found), found
    assert compile_workflow(workflow(step(name, matrix={"r": [str(i) for i in range(10)]})))
    # A list from an output may make 256 copies: the name must leave room for three digits.
    found = errors_of(step("list", outputs=["items"]), step("e" * 60, matrix={"r": from_output()}))
    assert any("spec.steps[1].name" in e and "63" in e for e in found), found


def test_a_step_named_like_a_copy_is_refused():
    found = errors_of(step("deploy", matrix={"r": ["a"]}), step("deploy-7"))
    assert any(e.startswith("spec.steps[1].name:") and 'copy of matrix step "deploy"' in e for e in found)
    assert compile_workflow(workflow(step("deploy", matrix={"r": ["a"]}), step("deploy-x")))


def test_a_matrix_name_that_is_also_a_variable_of_the_step_is_refused():
    found = errors_of(step("d", matrix={"REGION": ["eu"]}, env=[{"name": "REGION", "value": "us"}]))
    assert any(e.startswith("spec.steps[0].matrix.REGION:") and "env" in e for e in found), found


def test_the_expanded_workflow_keeps_to_1000_steps():
    many = [step(f"s{i}", parallel=True) for i in range(800)]
    found = errors_of(*many, step("m", matrix={"r": [str(i) for i in range(201)]}))
    assert any("1,000" in e and "1,000" in e and "spec.steps" in e for e in found), found
    assert compile_workflow(workflow(*many, step("m", matrix={"r": [str(i) for i in range(200)]})))


def test_a_list_from_an_output_must_come_from_a_prerequisite_that_declares_it():
    found = errors_of(step("a", outputs=["items"], parallel=True),
                      step("b", matrix={"r": from_output("a")}, parallel=True))
    assert any("spec.steps[1].matrix.r.fromOutput" in e and "not a prerequisite" in e for e in found)
    found = errors_of(step("a"), step("b", matrix={"r": from_output("a", "nope")}))
    assert any("does not declare it" in e for e in found), found
    found = errors_of(step("b", matrix={"r": from_output("ghost")}))
    assert any('unknown step "ghost"' in e for e in found), found


def test_a_matrix_value_pasted_into_shell_code_is_refused():
    found = errors_of(step("d", matrix={"REGION": ["eu"]}, script="deploy $(REGION)"))
    assert any("$(REGION)" in e and "a matrix value into shell code" in e for e in found), found
    assert compile_workflow(workflow(step("d", matrix={"REGION": ["eu"]}, script='deploy "$REGION"')))


def test_a_type_may_not_say_matrix(tmp_path):
    from stepflow.step_types import read_step_type
    kept = {"apiVersion": "stepflow.dev/v1alpha1", "kind": "StepType", "metadata": {"name": "t"},
            "spec": {"image": "busybox", "script": "true", "matrix": {"r": ["a"]}}}
    _, errors = read_step_type(kept)
    assert any("matrix" in str(e) for e in errors), errors


# --- M4: what an output must hold --------------------------------------------------------------

@pytest.mark.parametrize(("text", "words"), [
    ("not json", "is not JSON"),
    ('{"a": 1}', "JSON object, not an array"),
    ('["a", 2]', "item 1 is not a string"),
    ('"one"', "JSON str"),
])
def test_an_output_that_is_not_an_array_of_strings_says_why(text, words):
    found = list_from_output(text)
    assert isinstance(found, str) and words in found


def test_an_array_of_strings_is_read_as_is():
    assert list_from_output('["a", "$(X)", ""]') == ["a", "$(X)", ""]


def test_the_copies_values_are_bounded_since_status_keeps_them():
    big = "x" * 30_000
    found = errors_of(step("m", matrix={"a": [big, big + "y"], "b": ["1", "2"]}))
    assert any(e.startswith("spec.steps[0].matrix:") and "at most 65,536" in e for e in found), found
    found = errors_of(*(step(f"m{i}", matrix={"a": [big]}, parallel=True) for i in range(5)))
    assert any(e.startswith("spec.steps:") and "at most 131,072" in e for e in found), found


def test_a_missing_image_is_said_once_for_a_matrix_step_not_once_per_copy():
    from stepflow.cluster_refusals import cluster_errors
    plan = compile_workflow(workflow(step("deploy", matrix={"r": ["a", "b", "c"]})))
    assert [str(e) for e in cluster_errors(plan)] == [
        'spec.steps[0].image: step "deploy" has no image; set it or spec.defaults.image']
