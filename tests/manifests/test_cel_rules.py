"""The CRD's CEL rules, compiled and run on objects that keep and break each of them."""

from __future__ import annotations

import re
import time

import cel as celpy
import pytest

from manifests import cel
from manifests.schema import crd_schema
from manifests.workflows import changed, numbered, step, workflow

RULES = cel.collect_rules()
RUNNING = {"phase": "Running"}


def _set(path: str, value):
    """An edit for :func:`changed`: set a dotted path such as ``spec.steps.0.script``."""
    def edit(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


# For every rule (found by the start of its message): objects that keep it and objects that
# break it. An entry is a new object, or (new, old) for an update.
_running = workflow(step("a"), step("b"), status=RUNNING)
def _with_finally(doc: dict, name: str) -> dict:
    doc["spec"]["finally"] = [{"name": name, "script": "true"}]
    return doc


CASES: dict[str, tuple[list, list]] = {
    "only spec.suspend and spec.maxConcurrency": (
        [
            (changed(_running, _set("spec.suspend", True)), _running),
            (changed(_running, _set("spec.maxConcurrency", 1)), _running),
            (changed(_running, _set("metadata.labels", {"team": "a"})), _running),
            (changed(_running, _set("status.phase", "Succeeded")), _running),
            (changed(_running, _set("spec.steps.0.script", "exit 1")),
             changed(_running, _set("status.phase", "Succeeded"))),
            (changed(_running, _set("spec.steps.0.script", "exit 1")),
             changed(_running, lambda d: d.pop("status"))),
        ],
        [
            (changed(_running, _set("spec.steps.0.script", "exit 1")), _running),
            (changed(_running, lambda d: d["spec"]["steps"].reverse()), _running),
            (changed(_running, _set("spec.failurePolicy", "FailFast")),
             changed(_running, _set("status.phase", "Pending"))),
            (changed(_running, _set("spec.timeoutSeconds", 60)),
             changed(_running, _set("status.phase", "Suspended"))),
            (changed(_running, _set("spec.serviceAccountName", "deployer")), _running),
            (changed(_running, _set("spec.defaults.image", "busybox")), _running),
            (changed(_running, _set("spec.runToken", "rerun-2")), _running),
        ],
    ),
    "every step needs an image": (
        [workflow(step("a")),
         workflow(step("a", image="busybox"), defaults={})],
        [workflow(step("a", image="busybox"), step("b"), defaults={"env": []})],
    ),
    "parallelGroup numbers must increase": (
        [numbered(1, 1, 2), numbered(1, 0, 3, 7), numbered(0, 0)],
        [numbered(2, 1), numbered(1, 3, 3, 2)],
    ),
    "steps that share a parallelGroup number": (
        [numbered(1, 1, 0, 2), numbered(0, 1, 0), numbered(3, 3, 3)],
        [numbered(1, 0, 1), numbered(1, 1, 0, 1, 2)],
    ),
    "set exactly one of command or script": (
        [workflow(step("a")), workflow(step("a", script=None, command=["make"]))],
        [workflow(step("a", command=["make"])), workflow(step("a", script=None))],
    ),
    "args is only allowed together with command": (
        [workflow(step("a", script=None, command=["sh", "-c"], args=["echo hi"]))],
        [workflow(step("a", args=["echo hi"]))],
    ),
    "parallel false conflicts with parallelGroup": (
        [workflow(step("a", parallel=True, parallelGroup=1)),
         workflow(step("a", parallel=False)),
         workflow(step("a", parallel=False, parallelGroup=0))],
        [workflow(step("a", parallel=False, parallelGroup=2))],
    ),
    "metadata.name may have at most 63": (
        [changed(workflow(step("a")), _set("metadata.name", "w" * 63))],
        [changed(workflow(step("a")), _set("metadata.name", "w" * 64)),
         changed(workflow(step("a")), _set("metadata.name", "a." + "b" * 70))],
    ),
    "resources.claims is not supported": (
        [workflow(step("a", resources={"limits": {"cpu": "1"}}))],
        [workflow(step("a", resources={"claims": [{"name": "gpu"}]}))],
    ),
    "defaults.resources.claims is not supported": (
        [workflow(step("a"), defaults={"image": "x", "resources": {"requests": {"cpu": "1"}}})],
        [workflow(step("a"), defaults={"image": "x", "resources": {"claims": [{"name": "gpu"}]}})],
    ),
    "step names must be unique across": (
        [workflow(step("a")), _with_finally(workflow(step("a")), "b")],
        [_with_finally(workflow(step("a")), "a")],
    ),
    "a step cannot depend on itself": (
        [workflow(step("a"), step("b", dependsOn=["a"])), workflow(step("a", dependsOn=[]))],
        [workflow(step("a"), step("b", dependsOn=["a", "b"]))],
    ),
}


def _clean(case):
    """Drop the ``None`` fields the builders use to unset a default (script=None)."""
    new, old = case if isinstance(case, tuple) else (case, None)
    for doc in (new, old):
        for s in (doc or {}).get("spec", {}).get("steps", []):
            for key in [k for k, v in s.items() if v is None]:
                del s[key]
    return new, old


def _rule(prefix: str) -> cel.Rule:
    """The rule of spec.steps (spec.finally carries copies, checked apart)."""
    matches = [r for r in RULES if r.message.startswith(prefix) and "finally" not in r.path]
    assert len(matches) == 1, f"{prefix!r} matches {len(matches)} rules"
    return matches[0]


def test_finally_steps_carry_the_rules_of_steps():
    """X2: spec.finally has the same fields, so the same per-step and whole-list rules."""
    def rules_under(list_name: str) -> list[tuple[str, str]]:
        return sorted((r.rule, r.message) for r in RULES if list_name in r.path)

    assert rules_under("finally") == rules_under("steps") != []


def test_every_rule_compiles():
    for rule in RULES:
        for text in cel.expressions(rule):
            celpy.compile(text)


def test_every_rule_has_cases():
    main_rules = sorted(r.message[:30] for r in RULES if "finally" not in r.path)
    assert main_rules == sorted(_rule(p).message[:30] for p in CASES)


@pytest.mark.parametrize("prefix", CASES)
def test_rule_keeps_good_objects(prefix):
    rule = _rule(prefix)
    for case in CASES[prefix][0]:
        new, old = _clean(case)
        assert cel.check(new, old, rules=[rule]) == [], new["spec"]["steps"]


@pytest.mark.parametrize("prefix", CASES)
def test_rule_rejects_bad_objects(prefix):
    rule = _rule(prefix)
    for case in CASES[prefix][1]:
        new, old = _clean(case)
        errors = cel.check(new, old, rules=[rule])
        assert errors, new["spec"]["steps"]
        assert all(prefix in e for e in errors), errors


def test_transition_rule_is_skipped_on_create():
    bad_update = CASES["only spec.suspend and spec.maxConcurrency"][1][0]
    rule = _rule("only spec.suspend")
    assert rule.transition
    assert cel.check(bad_update[0], None, rules=[rule]) == []


def test_per_step_messages_name_the_step():
    assert "step b: a step cannot depend on itself" in cel.check(
        workflow(step("a"), step("b", dependsOn=["b"])))[0]


def test_whole_list_rules_have_plain_messages():
    """A real API server refuses a messageExpression over the whole steps list as too costly
    (tests/kube found it); `stepflow validate` and InvalidSpec name the steps instead."""
    assert "adjacent" in cel.check(numbered(1, 0, 1))[0]
    for rule in RULES:
        if rule.path in (("spec",), ("spec", "steps")):
            assert rule.message_expression is None, rule.key


def test_transition_rule_compares_every_other_spec_field():
    """A field added to spec must be locked during a run unless it is meant to change."""
    rule = _rule("only spec.suspend")
    fields = set(crd_schema()["properties"]["spec"]["properties"]) - {"suspend", "maxConcurrency"}
    for name in fields:
        assert re.search(rf"self\.spec\.{name} == oldSelf\.spec\.{name}", rule.rule), name


def test_rules_walk_only_bounded_lists_and_strings():
    problems = {f"{rule.key}: {p}" for rule in RULES for text in cel.expressions(rule)
                for p in cel.unbounded_walks(rule.node, text)}
    assert not problems


def test_rough_cost_is_within_the_kubernetes_budget():
    for rule in RULES:
        for text in cel.expressions(rule):
            assert cel.rough_cost(rule.node, text) <= cel.MAX_ESTIMATED_COST, rule.key


def test_static_checks_catch_an_unbounded_or_costly_rule():
    steps = crd_schema()["properties"]["spec"]["properties"]["steps"]
    unbounded = {**steps, "maxItems": None}
    del unbounded["maxItems"]
    rule = "self.all(s, s.name != '')"
    assert cel.unbounded_walks(unbounded, rule)
    cubic = "self.all(s, self.all(t, self.exists(u, u.name == s.name)))"
    assert cel.rough_cost(steps, cubic) > cel.MAX_ESTIMATED_COST


def test_large_workflows_are_checked_quickly():
    started = time.perf_counter()
    valid = [i // 3 + 1 for i in range(300)] + [0] * 700  # 300 numbered: under the cost guard
    assert cel.check(numbered(*valid)) == []
    broken = [1, 0, *valid[2:]]
    broken[1], broken[2] = 0, 1  # s0=1, s1 unnumbered, s2=1: not adjacent
    assert any("adjacent" in e for e in cel.check(numbered(*broken)))
    assert cel.check(numbered(*(i // 4 + 1 for i in range(1000)))) == []  # the largest allowed
    assert time.perf_counter() - started < 10


def test_adjacency_rule_steps_aside_for_huge_numbered_workflows():
    """Past the cost guard the CRD leaves non-adjacent numbers to the operator's validation."""
    groups = [1, 0, 1, *range(2, 399)] + [0] * 600  # 399 numbered of 1000, s0 and s2 apart
    assert len(groups) == 1000
    assert cel.check(numbered(*groups)) == []
    assert any("adjacent" in e for e in cel.check(numbered(*groups[:300])))
