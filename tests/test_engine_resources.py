"""R1: spec.maxResources, in the engine and in validation, with hypothesis properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import step, workflow
from simulate import simulate
from stepflow.capacity import parse_quantity
from stepflow.engine import RUNNING, WAITING_FOR_RESOURCES, StepState, decide
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError


def cpu(name: str, amount: str | None, parallel: bool = True, **fields) -> dict:
    """A step requesting ``amount`` of CPU (None: no resources at all)."""
    if amount is not None:
        fields["resources"] = {"requests": {"cpu": amount}}
    return step(name, parallel=parallel or None, **fields)


def plan(*steps: dict, **spec):
    spec.setdefault("maxResources", {"cpu": "2"})
    spec.setdefault("maxConcurrency", 100)
    return compile_workflow(workflow(*steps, **spec))


def overlap_peak(result, requests: dict[str, Decimal]) -> Decimal:
    """The largest sum of requests of steps running at one instant."""
    instants = {i.start for i in result.intervals.values()}
    peak = Decimal(0)
    for t in instants:
        live = [n for n, i in result.intervals.items() if i.start <= t < i.end]
        peak = max(peak, sum((requests.get(n, Decimal(0)) for n in live), Decimal(0)))
    return peak


def test_r1_running_steps_never_request_more_than_the_budget():
    p = plan(cpu("a", "1"), cpu("b", "1"), cpu("c", "1"), cpu("d", "1"))
    result = simulate(p, {})
    assert result.max_running == 2  # a count cap alone (100) would have run four
    assert result.phases() == dict.fromkeys("abcd", "Succeeded")


def test_r1_a_step_that_does_not_fit_waits_saying_what_it_needs_and_what_is_free():
    p = plan(cpu("a", "1500m"), cpu("b", "1"))
    decision = decide(p, {"a": StepState(RUNNING)}, now=0, started_at=0)
    assert decision.start == ()
    verdict = decision.waiting["b"]
    assert verdict.reason == WAITING_FOR_RESOURCES
    assert verdict.message == "needs cpu 1; free cpu 500m of maxResources cpu 2"


def test_r1_requests_default_to_limits_and_defaults_apply():
    p = plan(step("a", parallel=True), step("b", parallel=True),
             defaults={"resources": {"limits": {"cpu": "2"}}})
    assert decide(p, {}, now=0, started_at=0).start == ("a",)


def test_r1_a_step_without_requests_counts_as_zero():
    p = plan(cpu("big", "2"), cpu("free", None), cpu("other", None))
    assert decide(p, {}, now=0, started_at=0).start == ("big", "free", "other")


def test_r1_a_waiting_step_holds_back_later_steps_that_need_what_it_lacks():
    """First come, first served: 'big' is not overtaken by 'small', which would fit."""
    p = plan(cpu("a", "1"), cpu("big", "2"), cpu("small", "1"), cpu("none", None),
             maxResources={"cpu": "2", "memory": "1Gi"})
    decision = decide(p, {"a": StepState(RUNNING)}, now=0, started_at=0)
    assert decision.start == ("none",)
    assert decision.waiting["small"].reason == WAITING_FOR_RESOURCES
    assert 'behind "big"' in decision.waiting["small"].message


def test_r1_unbudgeted_resources_are_not_limited():
    p = plan(step("a", parallel=True, resources={"requests": {"memory": "64Gi"}}),
             step("b", parallel=True, resources={"requests": {"memory": "64Gi"}}))
    assert decide(p, {}, now=0, started_at=0).start == ("a", "b")


def test_r1_finally_steps_keep_to_the_budget():
    p = compile_workflow(workflow(cpu("main", "1"), maxResources={"cpu": "1"},
                                  **{"finally": [cpu("f1", "1"), cpu("f2", "1")]}))
    result = simulate(p, {})
    assert result.max_running == 1
    assert result.phases() == dict.fromkeys(("main", "f1", "f2"), "Succeeded")


def test_r1_the_cap_and_the_budget_combine():
    p = plan(*(cpu(f"s{i}", "100m") for i in range(6)), maxConcurrency=3)
    assert len(decide(p, {}, now=0, started_at=0).start) == 3


@pytest.mark.parametrize("doc_spec, path, words", [
    ({"maxResources": {"cpu": "3"}, "steps": [cpu("a", "4")]}, "spec.steps[0].resources",
     'step "a" requests cpu 4, more than spec.maxResources allows (3), so it could never start'),
    ({"maxResources": {"cpu": "lots"}, "steps": [cpu("a", "1")]}, "spec.maxResources.cpu",
     "not a Kubernetes quantity"),
    ({"maxResources": {"cpu": "-1"}, "steps": [cpu("a", "1")]}, "spec.maxResources.cpu", ">= 0"),
    ({"maxResources": {"cpu": "1"}, "steps": [cpu("a", "x")]}, "spec.steps[0].resources.requests.cpu",
     "not a Kubernetes quantity"),
    ({"maxResources": {"cpu": "1"}, "defaults": {"resources": {"limits": {"cpu": "2"}}},
      "steps": [step("a"), step("b")]}, "spec.defaults.resources", "could never start"),
    ({"maxResources": {"Bad Name": "1"}, "steps": [step("a")]}, "spec.maxResources['Bad Name']",
     "not a resource name"),
    ({"maxResources": [1], "steps": [step("a")]}, "spec.maxResources", "must be an object"),
])
def test_r1_invalid_budgets_and_steps_that_never_fit_are_refused_with_their_path(doc_spec, path, words):
    doc = workflow(*doc_spec.pop("steps"), **doc_spec)
    with pytest.raises(SpecError) as error:
        compile_workflow(doc)
    found = [e for e in error.value.errors if e.path == path]
    assert found and words in found[0].message, error.value.errors
    assert len([e for e in error.value.errors if e.path == path]) == 1  # a bad default: once


AMOUNTS = st.sampled_from(["100m", "250m", "500m", "1", "1500m", "2", None])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(AMOUNTS, st.floats(0.5, 3), st.booleans()), min_size=1, max_size=12),
       st.sampled_from(["2", "2500m", "3"]), st.integers(1, 6))
def test_property_summed_requests_never_exceed_the_budget_and_every_step_runs(shape, limit, cap):
    steps = [cpu(f"s{i}", amount, parallel) for i, (amount, _, parallel) in enumerate(shape)]
    p = compile_workflow(workflow(*steps, maxResources={"cpu": limit}, maxConcurrency=cap))
    requests = {f"s{i}": parse_quantity(a) for i, (a, _, _) in enumerate(shape) if a}
    result = simulate(p, {f"s{i}": d for i, (_, d, _) in enumerate(shape)})
    assert not result.stuck  # nothing waits forever: every step fits on its own
    assert set(result.phases().values()) == {"Succeeded"}
    assert overlap_peak(result, requests) <= parse_quantity(limit)


def test_without_a_budget_nothing_waits_for_resources():
    p = compile_workflow(workflow(cpu("a", "64"), cpu("b", "64")))
    decision = decide(p, {}, now=0, started_at=0)
    assert decision.start == ("a", "b") and p.budget is None
    assert all(v.reason != WAITING_FOR_RESOURCES for v in decision.waiting.values())
