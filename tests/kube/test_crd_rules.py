"""The CRD's CEL rules, defaults and list keys, judged by the real API server.

Every rule keeps the objects it should keep and refuses, with its message, those it should refuse,
exactly as ``kubectl apply --dry-run=server`` would show: the requests are server-side dry runs
with strict field validation, kubectl's defaults. One namespace serves the module; only the old
objects a transition rule compares against are stored.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kube.controlplane import ControlPlane
from kube.realcluster import Kube
from manifests.workflows import changed, numbered, step, workflow
from stepflow import crd
from stepflow.operator.runtime.api import Invalid

NAMESPACE = "crd-rules"
DRY_RUN = {"dryRun": "All", "fieldValidation": "Strict"}
RUNNING = {"phase": "Running"}
_names = itertools.count()


@pytest.fixture(scope="module")
def ns(control_plane: ControlPlane) -> Iterator[Kube]:
    """One namespace for the whole module (the tier's ``kube`` fixture makes one per test)."""
    kube = Kube(control_plane, NAMESPACE)
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    yield kube
    kube.delete("namespaces", NAMESPACE)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit for :func:`changed`: set a dotted path such as ``spec.steps.0.script``."""
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _with_finally(doc: dict[str, Any], name: str) -> dict[str, Any]:
    doc["spec"]["finally"] = [{"name": name, "script": "true"}]
    return doc


# For every rule (found by the start of its message): objects that keep it and objects that
# break it. An entry is a new object, or (new, old) for an update.
_running = workflow(step("a"), step("b"), status=RUNNING)
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
            (changed(_running, _set("spec.steps.0.type", "terraform")),
             changed(_running, _set("status", {"phase": "Pending", "reason": "StepTypeNotFound"}))),
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
            (changed(_running, _set("spec.steps.0.with", {"a": "b"})), _running),
            (changed(_running, _set("spec.steps.0.type", "terraform")),
             changed(_running, _set("status", {"phase": "Pending", "reason": "InvalidSpec"}))),
        ],
    ),
    "every step needs an image": (
        [workflow(step("a")),
         workflow(step("a", image="busybox"), defaults={}),
         workflow(step("a", script=None, type="http-check"), defaults={})],
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
    "set command or script, not both": (
        [workflow(step("a")), workflow(step("a", script=None, command=["make"])),
         workflow(step("a", script=None, type="kubectl-apply"))],
        [workflow(step("a", command=["make"]))],
    ),
    "has nothing to run": (
        [workflow(step("a", script=None, type="terraform")),
         workflow(step("a", script=None, type="scan", **{"with": {"target": "$(X)"}}))],
        [workflow(step("a", script=None)),
         workflow(step("a", script=None, env=[{"name": "A", "value": "1"}]))],
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


def _clean(doc: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A copy for this namespace: the builders' ``None`` fields (script=None) dropped, and the
    name replaced where one is given (an update needs a stored object of its own)."""
    doc = copy.deepcopy(doc)
    for s in doc["spec"].get("steps", []):
        for key in [k for k, v in s.items() if v is None]:
            del s[key]
    doc["metadata"] = {**doc["metadata"], "namespace": NAMESPACE}
    doc["metadata"].pop("generation", None)
    if name is not None:
        doc["metadata"]["name"] = name
    return doc


def create(kube: Kube, doc: dict[str, Any]) -> str | None:
    """None when the API server would create ``doc``, else its message."""
    try:
        kube.api.request("POST", kube.path("workflows"), query=DRY_RUN, body=_clean(doc))
    except Invalid as refused:
        return str(refused)
    return None


def update(kube: Kube, new: dict[str, Any], old: dict[str, Any]) -> str | None:
    """None when the API server would let ``old`` (stored first, status included) become ``new``,
    through the main resource and, where the status differs, through the status subresource."""
    name = f"t{next(_names)}"
    stored = kube.api.request("POST", kube.path("workflows"), body=_clean(old, name))
    if old.get("status"):
        stored = kube.api.request("PATCH", kube.path("workflows", name, subresource="status"),
                                  body={"status": old["status"]}, content_type="application/merge-patch+json")
    body = _clean(new, name)
    body["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
    writes = [kube.path("workflows", name)]
    if new.get("status") != old.get("status"):
        writes.append(kube.path("workflows", name, subresource="status"))
    try:
        for path in writes:
            kube.api.request("PUT", path, query=DRY_RUN, body=body)
    except Invalid as refused:
        return str(refused)
    return None


def judge(kube: Kube, case: dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]) -> str | None:
    return update(kube, *case) if isinstance(case, tuple) else create(kube, case)


def _rules(document: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every CEL rule of a CRD, with the path of its schema node ("[]" for a list's items)."""
    def walk(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        for rule in node.get("x-kubernetes-validations", ()):
            yield path, rule
        for name, sub in (node.get("properties") or {}).items():
            yield from walk(sub, (*path, name))
        if isinstance(node.get("items"), dict):
            yield from walk(node["items"], (*path, "[]"))
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], (*path, "{}"))
    yield from walk(document["spec"]["versions"][0]["schema"]["openAPIV3Schema"], ())


def test_every_rule_has_cases():
    messages = [r["message"] for path, r in _rules(crd.workflow_crd()) if "finally" not in path]
    assert sorted(messages) == sorted(next(m for m in messages if m.startswith(p)) for p in CASES)


@pytest.mark.parametrize("prefix", CASES)
def test_rule_keeps_good_objects(ns, prefix):
    for case in CASES[prefix][0]:
        assert judge(ns, case) is None, case


@pytest.mark.parametrize("prefix", CASES)
def test_rule_rejects_bad_objects(ns, prefix):
    for case in CASES[prefix][1]:
        refused = judge(ns, case)
        assert refused is not None and prefix in refused, (refused, case)


def test_every_rule_message_reaches_the_user(ns):
    """A rule with reason FieldValueDuplicate loses its message: the API server then answers only
    "<path>: Duplicate value". No rule of ours may have it."""
    rules = _rules(crd.workflow_crd())
    assert [r["message"] for _, r in rules if r.get("reason") == "FieldValueDuplicate"] == []
    refused = create(ns, CASES["step names must be unique across"][1][0])
    assert "step names must be unique across spec.steps and spec.finally" in refused


def test_transition_rule_is_skipped_on_create(ns):
    new, _ = CASES["only spec.suspend and spec.maxConcurrency"][1][0]
    assert create(ns, new) is None


def test_per_step_messages_name_the_step(ns):
    refused = create(ns, workflow(step("a"), step("b", dependsOn=["b"])))
    assert "step b: a step cannot depend on itself" in refused


def test_whole_list_rules_have_plain_messages(ns):
    """A real API server refuses a messageExpression over the whole steps list as too costly;
    `stepflow validate` and InvalidSpec name the steps instead (tests/test_crd.py checks the rest)."""
    assert "adjacent" in create(ns, numbered(1, 0, 1))


def test_large_workflows_are_checked_quickly(ns):
    started = time.perf_counter()
    valid = [i // 3 + 1 for i in range(300)] + [0] * 700  # 300 numbered: under the cost guard
    assert create(ns, numbered(*valid)) is None
    broken = [1, 0, *valid[2:]]
    broken[1], broken[2] = 0, 1  # s0=1, s1 unnumbered, s2=1: not adjacent
    assert "adjacent" in create(ns, numbered(*broken))
    assert create(ns, numbered(*(i // 4 + 1 for i in range(1000)))) is None  # the largest allowed
    assert time.perf_counter() - started < 10


def test_adjacency_rule_steps_aside_for_huge_numbered_workflows(ns):
    """Past the cost guard the CRD leaves non-adjacent numbers to the operator's validation."""
    groups = [1, 0, 1, *range(2, 399)] + [0] * 600  # 399 numbered of 1000, s0 and s2 apart
    assert len(groups) == 1000
    assert create(ns, numbered(*groups)) is None
    assert "adjacent" in create(ns, numbered(*groups[:300]))


def test_the_api_server_fills_in_the_crd_defaults(ns):
    filled = ns.api.request("POST", ns.path("workflows"), query=DRY_RUN, body=_clean(workflow(step("a"))))
    assert filled["spec"]["maxConcurrency"] == 5
    assert filled["spec"]["steps"][0] == {"name": "a", "script": "true", "retries": 0,
                                          "continueOnError": False}


def test_duplicate_step_names_are_refused(ns):
    assert "Duplicate value" in create(ns, workflow(step("a"), step("a")))


def _copy_of_the_crd(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The Workflow CRD under another group, so that a dry run can create it beside the real one."""
    document = crd.workflow_crd()
    document["metadata"]["name"] = "workflows.costcheck.example.com"
    document["spec"]["group"] = "costcheck.example.com"
    edit(document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])
    return document


def test_the_api_server_estimates_the_rules_cost_when_the_crd_is_applied(ns):
    """What makes installing the CRD a proof that its rules stay within Kubernetes' CEL budget:
    the same CRD with one list unbounded is refused for its cost."""
    path = ns.path("customresourcedefinitions")
    ns.api.request("POST", path, query=DRY_RUN, body=_copy_of_the_crd(lambda spec: None))
    with pytest.raises(Invalid) as refused:
        ns.api.request("POST", path, query=DRY_RUN, body=_copy_of_the_crd(
            lambda spec: spec["steps"].pop("maxItems")))
    assert "cost exceeds budget" in str(refused.value), refused.value
