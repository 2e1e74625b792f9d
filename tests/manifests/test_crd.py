"""The Workflow CRD: names, columns, a structural schema that reads well in `kubectl explain`,
and every example in examples/ accepted by it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from manifests import schema
from manifests.checks import ROOT, example_errors, load_yaml_documents, status_errors
from manifests.workflows import step, workflow

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_names_and_scope():
    spec = schema.load_crd()["spec"]
    assert spec["group"] == "stepflow.dev" and spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["plural"], names["singular"]) == ("Workflow", "workflows", "workflow")
    assert names["shortNames"] == ["swf"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns():
    (version,) = schema.load_crd()["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Progress", "Age", "Duration", "Message"]
    assert columns["Age"] == {**columns["Age"], "type": "date",
                              "jsonPath": ".metadata.creationTimestamp"}
    assert columns["Message"]["priority"] == 1
    assert all(c.get("priority", 0) == 0 for n, c in columns.items() if n != "Message")
    status = schema.crd_schema()["properties"]["status"]["properties"]
    for column in columns.values():
        path = column["jsonPath"].split(".")[1:]
        if path[0] == "status":
            assert path[1] in status, column


def test_every_field_is_described():
    missing = [".".join(path) or "<root>" for path, node in schema.iter_nodes(schema.crd_schema())
               if not node.get("description") and not (path and path[-1] == "anyOf")
               and path != ("metadata",)]
    assert missing == []


def test_metadata_schema_is_only_its_type():
    """A real API server refuses a CRD whose metadata schema says more (found on the real tier)."""
    assert schema.crd_schema()["properties"]["metadata"] == {"type": "object"}


# A matrix's value is a list or an object, which no OpenAPI type says; stepflow checks its shape.
OPEN_NODES = {("spec", "steps", "[]", "matrix", "{}"), ("spec", "finally", "[]", "matrix", "{}")}


def test_schema_is_structural_and_closed():
    for path, node in schema.iter_nodes(schema.crd_schema()):
        if path in OPEN_NODES:
            assert set(node) == {"x-kubernetes-preserve-unknown-fields", "description"}, path
            continue
        assert not node.get("x-kubernetes-preserve-unknown-fields"), path
        if path and path[-1] != "anyOf" and not node.get("x-kubernetes-int-or-string"):
            assert "type" in node, path


def test_defaults_and_bounds():
    spec = schema.crd_schema()["properties"]["spec"]["properties"]
    step_fields = spec["steps"]["items"]["properties"]
    assert spec["maxConcurrency"]["default"] == 5 and spec["maxConcurrency"]["minimum"] == 1
    assert spec["failurePolicy"]["default"] == "StopAfterGroup"
    assert spec["suspend"]["default"] is False
    assert step_fields["retries"]["default"] == 0 and step_fields["retries"]["maximum"] == 10
    assert step_fields["continueOnError"]["default"] is False
    assert spec["steps"]["maxItems"] == 1000 and spec["steps"]["minItems"] == 1
    assert step_fields["dependsOn"]["maxItems"] == 100
    assert step_fields["name"]["maxLength"] == 63
    assert spec["steps"]["x-kubernetes-list-map-keys"] == ["name"]
    # that the API server fills them in: tests/kube/test_crd_rules.py


def test_examples_exist():
    assert EXAMPLES, "examples/*.yaml is empty"
    assert sum(len(load_yaml_documents(path)) for path in EXAMPLES) >= 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted_by_the_crd(path):
    docs = load_yaml_documents(path)
    assert docs, f"{path.name} has no documents"
    for doc in docs:
        assert example_errors(doc) == [], doc.get("metadata", {}).get("name")


def test_unknown_and_mistyped_fields_are_rejected():
    # duplicate step names (a map list's keys) are the API server's to find: tests/kube/test_crd_rules.py
    assert any("spce" in e for e in schema.validate({**workflow(), "spce": {}}))
    assert any("retry" in e for e in schema.validate(workflow(step("a", retry=3))))
    assert schema.validate(workflow(step("a", parallel="yes")))
    assert schema.validate(workflow(step("Bad_Name")))
    assert schema.validate({**workflow(), "spec": {"steps": []}})
    assert schema.validate(workflow(step("a", parallelGroup=-1)))
    assert schema.validate(workflow(maxConcurrency=0))
    assert schema.validate(workflow(step("a", resources={"limits": {"cpu": "lots"}})))
    assert schema.validate(workflow(status={"phase": "Done"}))


@pytest.mark.parametrize("path", sorted((ROOT / "tests/fixtures/status").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_status_fixtures_match_the_crd(path):
    (fixture,) = load_yaml_documents(path)
    assert example_errors(fixture["object"]) == []


def test_status_written_by_stepflow_run_matches_the_crd(tmp_path):
    """The status document the executors write is accepted by the status schema."""
    doc = workflow(step("ok", parallel=True), step("boom", parallel=True, script="exit 3"),
                   step("after"))
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(doc))
    result = subprocess.run(
        [sys.executable, "-m", "stepflow", "run", "wf.yaml", "--report", "report.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    if not (tmp_path / "report.json").exists():
        pytest.fail(f"stepflow run wrote no report: {result.stdout}{result.stderr}")
    status = json.loads((tmp_path / "report.json").read_text())
    assert status["phase"] == "Failed" and status["steps"]["after"]["phase"] == "Skipped"
    assert status_errors(status) == []


def test_the_run_fingerprint_knows_every_crd_default():
    """A default the CRD adds on read must not change a Workflow's run identity."""
    from stepflow.operator.jobs import CRD_DEFAULTS, CRD_STEP_DEFAULTS

    found = {path: node["default"] for path, node in schema.iter_nodes(schema.crd_schema())
             if "default" in node}
    known = {("spec", k): v for k, v in CRD_DEFAULTS.items()}
    for steps in ("steps", "finally"):
        known.update({("spec", steps, "[]", k): v for k, v in CRD_STEP_DEFAULTS.items()})
    assert found == known
