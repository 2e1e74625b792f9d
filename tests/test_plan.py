"""Planning: groups (G1-G4, F6), G6 group errors, dependsOn (D1, D2), the JSON plan and estimates.

Pictures of a plan are tested in test_graph.py, reading files in test_workflow_files.py."""

from __future__ import annotations

import json
import re

import pytest

from builders import plan_of, shorthand, step, workflow
from stepflow.plan import compile_workflow, critical_path
from stepflow.spec import SpecError


def groups(text: str) -> list[list[str]]:
    return [list(g) for g in plan_of(text).groups]


def errors_of(steps: list[dict], **spec) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_workflow(workflow(*steps, **spec))
    return [str(e) for e in info.value.errors]


def single_error(steps: list[dict], **spec) -> str:
    errors = errors_of(steps, **spec)
    assert len(errors) == 1, errors
    return errors[0]


# --- G1-G4: the DESIGN examples and more --------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    # the three examples of DESIGN.md, verbatim
    ("p a, p b, s c, p d", [["a", "b"], ["c"], ["d"]]),
    ("pg1 a, pg1 b, s c, pg2 d, pg2 e, s f", [["a", "b"], ["c"], ["d", "e"], ["f"]]),
    ("p a, pg1 b, p c", [["a"], ["b"], ["c"]]),
    # G2: each sequential step is a group of its own, even next to another one
    ("s a, s b, s c", [["a"], ["b"], ["c"]]),
    # G3: a run of parallel steps ends at any other kind of step
    ("p a, p b, p c, s d, p e, p f", [["a", "b", "c"], ["d"], ["e", "f"]]),
    ("p a, pg3 b, pg3 c, p d, p e", [["a"], ["b", "c"], ["d", "e"]]),
    # G4: adjacent different numbers are different groups; gaps are fine
    ("pg1 a, pg1 b, pg3 c, pg7 d, pg7 e", [["a", "b"], ["c"], ["d", "e"]]),
    # a single parallel step is a group of one
    ("s a, p b, s c", [["a"], ["b"], ["c"]]),
])
def test_groups_follow_g1_to_g4(text, expected):
    assert groups(text) == expected


def test_parallel_group_zero_means_unset():
    """G1: parallelGroup 0 is "unset", so the step is sequential, or parallel if it says so."""
    plan = plan_of([step("a", group=0), step("b", group=0), step("c", parallel=True, group=0),
                    step("d", parallel=True)])
    assert [list(g) for g in plan.groups] == [["a"], ["b"], ["c", "d"]]


def test_parallel_true_with_a_number_is_numbered():
    """G1: a number wins over parallel: true; such a step does not join an adjacent parallel run."""
    plan = plan_of([step("a", parallel=True), step("b", parallel=True, group=1),
                    step("c", parallel=True, group=1), step("d", parallel=True)])
    assert [list(g) for g in plan.groups] == [["a"], ["b", "c"], ["d"]]


def test_group_members_keep_document_order():
    plan = plan_of("pg2 zeta, pg2 alpha, pg2 mid")
    assert plan.groups == (("zeta", "alpha", "mid"),)


def test_f6_no_parallel_fields_is_strictly_sequential():
    """F6: the backward-compatible default: one step per group, in document order."""
    names = [f"step-{i}" for i in range(12)]
    plan = plan_of([step(n) for n in names])
    assert plan.groups == tuple((n,) for n in names)
    assert [plan.prerequisites(n) for n in names] == [()] + [(n,) for n in names[:-1]]


def test_parallel_false_is_sequential():
    assert groups("s a, s b") == [["a"], ["b"]]
    plan = plan_of([step("a", parallel=False), step("b", parallel=False)])
    assert plan.groups == (("a",), ("b",))


# --- G6: invalid groupings, each named with its steps and field path --------------------------

def test_g6_non_adjacent_numbers_name_both_steps_and_those_between():
    error = single_error(shorthand("pg1 a, s b, pg1 c"))
    assert error.startswith("spec.steps[2].parallelGroup: ")
    assert '"a"' in error and '"c"' in error and '"b"' in error
    assert "not adjacent" in error


def test_g6_decreasing_numbers_are_rejected():
    error = single_error(shorthand("pg2 a, pg1 b"))
    assert error.startswith("spec.steps[1].parallelGroup: ")
    assert '"a"' in error and '"b"' in error
    assert "increase" in error


def test_g6_decrease_after_a_gap_is_rejected_even_between_other_steps():
    error = single_error(shorthand("pg1 a, pg5 b, s c, pg3 d"))
    assert error.startswith("spec.steps[3].parallelGroup: ")
    assert '"d"' in error and '"b"' in error


def test_g6_gaps_in_numbers_are_fine():
    assert groups("pg1 a, pg3 b, pg3 c, pg7 d") == [["a"], ["b", "c"], ["d"]]


def test_g6_negative_number():
    error = single_error([step("a", group=-1), step("b")])
    assert error.startswith("spec.steps[0].parallelGroup: ")
    assert '"a"' in error and "-1" in error


def test_g6_parallel_false_with_a_number():
    error = single_error([step("a"), step("b", parallel=False, group=2)])
    assert error.startswith("spec.steps[1].parallel: ")
    assert '"b"' in error and "parallelGroup 2" in error


def test_g6_nothing_is_dropped_or_reordered():
    """A valid plan holds every step exactly once, and groups read in document order."""
    text = "pg1 a, pg1 b, s c, p d, p e, pg4 f, s g"
    plan = plan_of(text)
    flat = [n for g in plan.groups for n in g]
    assert flat == ["a", "b", "c", "d", "e", "f", "g"]


# --- D1: dependsOn ------------------------------------------------------------------------------

def test_d1_prerequisites_replace_the_barrier():
    plan = plan_of("s a, s b, s c->a")
    assert plan.prerequisites("b") == ("a",)
    assert plan.prerequisites("c") == ("a",)  # not b, though c follows b


def test_d1_empty_depends_on_means_no_prerequisite_and_group_is_still_shown():
    plan = plan_of("s a, s b, s c->")
    assert plan.prerequisites("c") == ()
    assert plan.group_of["c"] == 2
    assert plan.groups == (("a",), ("b",), ("c",))
    document = plan.as_json()
    entry = next(s for s in document["steps"] if s["name"] == "c")
    assert entry == {"name": "c", "group": 2, "prerequisites": [], "dependsOn": []}


def test_d1_barrier_prerequisites_are_the_whole_previous_group():
    plan = plan_of("p a, p b, s c, p d, p e")
    assert plan.prerequisites("c") == ("a", "b")
    assert plan.prerequisites("d") == ("c",)
    assert plan.prerequisites("a") == ()


def test_d1_a_step_may_depend_on_a_later_step():
    """Nothing in D2 forbids it as long as there is no cycle."""
    plan = plan_of("s a->b, s b->")
    order = plan.topological_order
    assert order.index("b") < order.index("a")


def test_topological_order_puts_prerequisites_first():
    plan = plan_of("p a, p b, s c->a, pg2 d, pg2 e->c, s f")
    order = plan.topological_order
    assert sorted(order) == sorted(s.name for s in plan.steps)
    for name in order:
        for prerequisite in plan.prerequisites(name):
            assert order.index(prerequisite) < order.index(name)


# --- D2: references and cycles -----------------------------------------------------------------

def test_d2_unknown_name_with_suggestion():
    error = single_error([step("build"), step("test", depends_on=["biuld"])])
    assert error.startswith("spec.steps[1].dependsOn[0]: ")
    assert '"test"' in error and '"biuld"' in error
    assert 'did you mean "build"' in error


def test_d2_self_reference():
    error = single_error([step("a"), step("b", depends_on=["a", "b"])])
    assert error.startswith("spec.steps[1].dependsOn[1]: ")
    assert '"b"' in error and "itself" in error


def test_d2_duplicate_entry():
    error = single_error([step("a"), step("b", depends_on=["a", "a"])])
    assert error.startswith("spec.steps[1].dependsOn[1]: ")
    assert '"a"' in error


def test_d2_direct_cycle_prints_the_cycle():
    error = single_error(shorthand("s a->b, s b->a"))
    assert "cycle" in error
    assert re.search(r'"a" waits for "b" waits for "a"|"b" waits for "a" waits for "b"', error), error


def test_d2_longer_cycle_prints_every_step_on_it():
    error = single_error(shorthand("s a->c, s b->a, s c->b, s d"))
    assert "cycle" in error
    cycle = re.findall(r'"([a-z]+)"', error.split("cycle:", 1)[1])
    assert set(cycle) == {"a", "b", "c"}
    assert cycle[0] == cycle[-1]
    assert '"d"' not in error


def test_d2_cycle_through_a_barrier():
    """a (group 1) waits for b; b, a sequential step of group 2, waits for group 1: a cycle."""
    error = single_error(shorthand("s a->b, s b"))
    assert "cycle" in error
    assert '"a"' in error and '"b"' in error
    assert "end of group 1" in error  # the barrier is shown as part of the cycle


def test_d2_cycle_through_a_barrier_of_a_wide_group():
    error = single_error(shorthand("p a, p b, p c->d, s d"))
    assert "cycle" in error and '"c"' in error and '"d"' in error


def test_d2_cycle_error_points_at_a_depends_on_field_of_a_step_on_the_cycle():
    """The field path must lead the user to a dependsOn they can edit, on the cycle itself.

    Here the cycle d -> c -> e -> d runs through two barriers; d and e have no
    dependsOn at all, so only c's (or a's, which leads into it) can be the culprit.
    """
    steps = [step("a", depends_on=["d"]), step("b"), step("c", depends_on=["e"]), step("d"), step("e")]
    error = single_error(steps)
    path, _, message = error.partition(": ")
    assert "cycle" in message
    index = int(re.fullmatch(r"spec\.steps\[(\d+)\]\.dependsOn", path).group(1))
    assert "dependsOn" in steps[index], f"{path} has no dependsOn to fix"
    assert f'"{steps[index]["name"]}"' in message


def test_no_false_cycle_for_forward_and_backward_dependencies():
    plan = plan_of("s a, s b->d, s c, s d->a")
    assert plan.prerequisites("b") == ("d",)


# --- Plan export ---------------------------------------------------------------------------------

def test_as_json_groups_and_steps_in_document_order():
    plan = plan_of("pg1 a, pg1 b, s c, pg2 d, pg2 e, s f")
    document = json.loads(json.dumps(plan.as_json()))
    assert document["groups"] == [["a", "b"], ["c"], ["d", "e"], ["f"]]
    assert [s["name"] for s in document["steps"]] == list("abcdef")
    assert [s["group"] for s in document["steps"]] == [0, 0, 1, 2, 2, 3]


# --- critical path (used by `stepflow plan --durations`) ----------------------------------------

def test_critical_path_of_groups():
    plan = plan_of("p a, p b, s c, p d, p e")
    total, chain = critical_path(plan, {"a": 1, "b": 3, "c": 2, "d": 5, "e": 1})
    assert total == 10
    assert chain == ["b", "c", "d"]


def test_critical_path_follows_depends_on_not_the_barrier():
    plan = plan_of("s a, s b, s c->a")
    total, chain = critical_path(plan, {"a": 1, "b": 10, "c": 2})
    assert total == 11
    assert chain == ["a", "b"]


def test_critical_path_with_a_dependency_on_a_later_step():
    """Found by this suite: `plan --durations` crashed with KeyError on a forward dependsOn."""
    plan = plan_of("s a->b, s b->")
    total, chain = critical_path(plan, {"a": 1, "b": 2})
    assert total == 3
    assert chain == ["b", "a"]
