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


# --- the cost of a condition, bounded at validation (W2) ----------------------------------------

TEN = "[1,2,3,4,5,6,7,8,9,10]"


def nested_all(depth: int) -> str:
    names = "xyzwv"[:depth]
    inner = " + ".join(names) + " > 0"
    for name in reversed(names):
        inner = f"{TEN}.all({name}, {inner})"
    return inner


def test_a_condition_that_would_exceed_the_iteration_budget_is_refused_with_its_path():
    """Four nested all() over ten elements iterate 11,110 times; the library stops at 10,000."""
    found = errors(workflow(step("a"), step("b", when=nested_all(4))))
    assert len(found) == 1 and found[0].startswith('spec.steps[1].when: step "b": when may iterate 11,110 '
                                                   "times at worst; at most 10,000 are allowed")


def test_a_value_that_doubles_in_every_round_is_refused_before_it_can_fill_the_memory():
    # Thirty rounds would ask for a list of a billion elements; no iteration budget sees it.
    source = "[[1]]" + ".map(x, x + x)" * 25 + ".size() > 0"
    with pytest.raises(ConditionSyntaxError, match=r"worst-case cost of .* at most 1,000,000"):
        compile_condition(source)
    text = '["ab"]' + ".map(s, s + s)" * 24 + "[0].size() > 0"
    with pytest.raises(ConditionSyntaxError, match="worst-case cost"):
        compile_condition(text)


@pytest.mark.parametrize("source", [
    nested_all(3),
    "steps.a.outputs.all(k, steps.a.outputs[k].matches('^v[0-9]+[.][0-9]+$'))",
    "steps.a.outputs.tag.contains('rc') || workflow.name.startsWith('release-')",
    "[1, 2, 3].map(x, x * 2).filter(y, y > 2).size() == 2 && [1, 2].exists_one(x, x == 2)",
    "{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])",
])
def test_ordinary_conditions_stay_well_within_the_cost_bounds(source):
    assert compile_condition(source).source == source


def test_a_condition_whose_evaluation_raises_fails_its_step_and_the_run_goes_on(monkeypatch):
    """W2: whatever the library raises at evaluation ends the step Failed, reason ConditionError,
    decided in the engine (so both executors agree): here an estimate let through what the
    library's budget stops."""
    from simulate import simulate
    from stepflow import conditions

    monkeypatch.setattr(conditions, "_check_cost", lambda checked, placeholders: None, raising=False)
    doc = workflow(step("a"), step("b", when=nested_all(4)), step("c", depends_on=["a"]),
                   failurePolicy="Continue")
    doc["spec"]["finally"] = [step("notify")]
    result = simulate(compile_workflow(doc))
    b = result.states["b"]
    assert (b.phase, b.reason) == ("Failed", "ConditionError")
    assert "iterated more than 10,000 times" in b.message and "RuntimeError" not in b.message
    assert result.phase("c") == "Succeeded" and result.phase("notify") == "Succeeded"
    assert result.decision.phase == "Failed"
