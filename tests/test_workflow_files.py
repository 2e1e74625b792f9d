"""Workflow files into plans. Mirror: ``operator/stepflow/workflow_files.py``."""

from __future__ import annotations

import pytest

from stepflow.spec import SpecError
from stepflow.workflow_files import load_plan, load_plans


def test_load_plans_prefixes_errors_with_the_document_number(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(
        "apiVersion: stepflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: one}\n"
        "spec: {steps: [{name: a, script: 'true'}]}\n---\n"
        "apiVersion: stepflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: two}\n"
        "spec: {steps: [{name: A, script: 'true'}]}\n")
    with pytest.raises(SpecError) as info:
        load_plans(path)
    assert [e.path for e in info.value.errors] == ["[document 2] spec.steps[0].name"]


def test_load_plan_refuses_several_workflows(tmp_path):
    doc = "apiVersion: stepflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: %s}\n" \
          "spec: {steps: [{name: a, script: 'true'}]}\n"
    path = tmp_path / "two.yaml"
    path.write_text(doc % "one" + "---\n" + doc % "two")
    assert len(load_plans(path)) == 2
    with pytest.raises(SpecError, match="holds 2 Workflows"):
        load_plan(path)
