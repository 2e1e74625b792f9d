"""`when` conditions and stepOutput references: what validation refuses (O4, W2), each with its
field path and the steps involved, all at once."""

from __future__ import annotations

import pytest

from builders import step, workflow
from stepflow.conditions import ConditionSyntaxError, compile_condition
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError


def errors(doc) -> list[str]:
    with pytest.raises(SpecError) as caught:
        compile_workflow(doc)
    return [str(e) for e in caught.value.errors]


def reads(var, producer, output):
    return {"name": var, "valueFrom": {"stepOutput": {"step": producer, "output": output}}}


def test_a_syntax_error_shows_where_the_expression_breaks():
    with pytest.raises(ConditionSyntaxError) as caught:
        compile_condition("steps.a.phase == ")
    assert "column 18" in str(caught.value) and "steps.a.phase == ^" in str(caught.value)


@pytest.mark.parametrize(("expression", "expected"), [
    ("steps.a.outputs.tag", "must be a boolean expression"),
    ("steps.a.exitCode == 'one'", "no matching overload"),
    ("steps[name].phase == 'x'", "literal name"),
    ("workflow.owner == 'x'", "undeclared reference to 'workflow.owner'"),
])
def test_conditions_are_type_checked_at_compile_time(expression, expected):
    with pytest.raises(ConditionSyntaxError, match=expected):
        compile_condition(expression)


def test_every_reference_error_is_reported_at_once_with_path_and_steps():
    doc = workflow(step("a", outputs=["tag"]), step("b", parallel=True), step("c", parallel=True,
                   when="steps.b.phase == 'x' && steps.a.outputs.nope == '' && steps.zz.phase == ''",
                   env=[reads("T", "b", "tag"), reads("U", "ghost", "x")]))
    found = errors(doc)
    assert 'spec.steps[2].when: step "c" reads (in when) step "b", which is not a prerequisite' in found[2] \
        or any('spec.steps[2].when: step "c" reads (in when) step "b"' in e for e in found)
    assert any('output "nope" of step "a", which does not declare it (its outputs: tag)' in e for e in found)
    assert any('unknown step "zz"' in e for e in found)
    assert any(e.startswith("spec.steps[2].env[0].valueFrom.stepOutput: step \"c\" reads step \"b\"")
               for e in found)
    assert any('spec.steps[2].env[1].valueFrom.stepOutput: step "c" reads unknown step "ghost"' in e
               for e in found)


def test_a_main_step_cannot_read_a_finally_step_and_finally_depends_on_finally_only():
    doc = workflow(step("a", env=[reads("T", "notify", "x")]))
    doc["spec"]["finally"] = [step("notify", outputs=["x"], depends_on=["a"])]
    found = errors(doc)
    assert any("a finally step's dependsOn names finally steps only" in e for e in found)


def test_a_finally_step_may_read_any_main_step():
    doc = workflow(step("a", outputs=["x"]), step("b", depends_on=[]))
    doc["spec"]["finally"] = [step("notify", env=[reads("X", "a", "x")], when="steps.b.phase == 'Failed'")]
    assert compile_workflow(doc).conditions["notify"].steps == ("b",)


def test_names_are_unique_across_steps_and_finally():
    doc = workflow(step("a"))
    doc["spec"]["finally"] = [step("a")]
    assert 'spec.finally[0].name: duplicate step name "a" (also spec.steps[0])' in errors(doc)


def test_an_output_pasted_into_the_command_is_refused():
    doc = workflow(step("a", outputs=["tag"]),
                   step("b", script="echo $(TAG)", env=[reads("TAG", "a", "tag")]))
    assert any(e.startswith('spec.steps[1].script: step "b" uses $(TAG)') for e in errors(doc))


def test_output_names_are_identifiers():
    doc = workflow(step("a", outputs=["ok", "1bad", "ok"]))
    found = errors(doc)
    assert any(e.startswith("spec.steps[0].outputs[1]:") for e in found)
    assert any("declares output \"ok\" twice" in e for e in found)


def test_a_condition_error_names_the_step_and_field():
    doc = workflow(step("a"), step("b", when="1 +"))
    assert any(e.startswith('spec.steps[1].when: step "b": when ') and "1 +^" in e for e in errors(doc))
