"""Each offline check, fed something broken, must fail: proof that the passing runs mean something."""

from __future__ import annotations

import copy

import pytest
import yaml

from manifests import render
from manifests.checks import (
    DEPLOY,
    HEALTH_LUA,
    ROOT,
    argocd_health,
    example_errors,
    hadolint_errors,
    kstatus,
    kubernetes_errors,
    load_yaml_documents,
)
from manifests.workflows import step, workflow


def _deployment():
    objects = render.render(DEPLOY)
    return copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))


def test_kubernetes_validate_rejects_an_unknown_field():
    bad = _deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    errors = kubernetes_errors([bad])
    assert errors and "imagePullPolicyy" in errors[0]


def test_kubernetes_validate_rejects_a_wrong_type_and_an_unknown_kind():
    bad = _deployment()
    bad["spec"]["replicas"] = "one"
    assert kubernetes_errors([bad])
    assert kubernetes_errors([{"apiVersion": "example.com/v1", "kind": "Gadget",
                               "metadata": {"name": "g"}}])


def test_example_check_rejects_an_unknown_field():
    assert example_errors(workflow(step("a", retires=2)))
    assert example_errors({**workflow(), "spec": {**workflow()["spec"], "maxConcurency": 2}})


def test_example_check_rejects_a_mistyped_field():
    errors = example_errors(workflow(step("a", parallel="yes")))
    assert any("parallel" in e and "boolean" in e for e in errors)


def test_example_check_reads_every_document_of_a_file(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([workflow(), workflow(step("a", parallel="yes"))]))
    assert [bool(example_errors(doc)) for doc in load_yaml_documents(path)] == [False, True]


def test_example_check_judges_a_step_type_by_its_own_crd():
    def step_type(kind: str, **spec) -> dict:
        return {"apiVersion": "stepflow.dev/v1alpha1", "kind": kind, "metadata": {"name": "t"},
                "spec": {"image": "alpine:3.20", "script": "true", **spec}}

    assert example_errors(step_type("StepType", params=[{"name": "A", "default": "x"}])) == []
    assert example_errors(step_type("ClusterStepType")) == []
    # when a step runs is the step's to say, never its type's (T1)
    assert any("parallelGroup" in e for e in example_errors(step_type("StepType", parallelGroup=1)))
    assert any("dependsOn" in e for e in example_errors(step_type("ClusterStepType", dependsOn=[])))
    assert example_errors(step_type("StepType", params=[{"name": "A", "default": 3}]))
    assert example_errors({**step_type("StepType"), "kind": "StepTemplate"})


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n"
                   "RUN pip install kopf\nCMD stepflow operator\n")
    errors = "\n".join(hadolint_errors(bad))
    assert "DL3007" in errors  # :latest
    assert "DL3008" in errors  # unpinned apt package
    assert "DL3025" in errors  # CMD not in exec form


def test_argocd_fixtures_catch_a_wrong_health_script():
    lazy = HEALTH_LUA.read_text().replace('hs.status = "Degraded"', 'hs.status = "Healthy"')
    (fixture,) = load_yaml_documents(ROOT / "tests/fixtures/argocd/failed.yaml")
    assert argocd_health(fixture["object"], lazy) != fixture["expected"]
    ignores_generation = HEALTH_LUA.read_text().replace("status.observedGeneration < generation",
                                                        "false")
    (stale,) = load_yaml_documents(ROOT / "tests/fixtures/argocd/new-generation-not-yet-seen.yaml")
    assert argocd_health(stale["object"], ignores_generation) != stale["expected"]


def test_kstatus_fixtures_catch_a_wrong_condition():
    (fixture,) = load_yaml_documents(ROOT / "tests/fixtures/status/failed.yaml")
    obj = copy.deepcopy(fixture["object"])
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Stalled":
            condition["status"] = "False"
    assert kstatus(obj) != fixture["expected"]


def test_small_renderer_refuses_what_it_cannot_render(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(NotImplementedError):
        render.render(tmp_path, use_kubectl=False)
