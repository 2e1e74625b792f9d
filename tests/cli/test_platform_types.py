"""examples/platform-types.yaml, the seed's shape (T6), run locally: steps with only a name, a
type and a group run with the StepTypes of the same file, their params at their defaults."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stepflow.cli import main

EXAMPLE = Path(__file__).parents[2] / "examples" / "platform-types.yaml"
DOCS = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
(WORKFLOW,) = [d for d in DOCS if d["kind"] == "Workflow"]
TYPES = {d["metadata"]["name"]: d for d in DOCS if d["kind"] == "StepType"}

# What each step prints, with every param at its default: the type's script read "$NAME".
EXPECTED_LINES = {
    "validate-syntax": ["validating the application (strict)"],
    "security-scan": ["scanning for vulnerabilities of severity HIGH or worse"],
    "provision-database": ["terraform -chdir=infra/database init -input=false",
                           "terraform -chdir=infra/database apply -input=false"],
    "deploy-backend": ["kubectl apply -k deploy/overlays/production --namespace shop"],
    "deploy-frontend": ["kubectl apply -k deploy/overlays/production --namespace shop"],
    "health-check": ["validating the application (strict)"],
}


def test_the_example_is_in_the_seeds_shape():
    for step in WORKFLOW["spec"]["steps"]:
        assert set(step) <= {"name", "type", "parallel", "parallelGroup"}, step
        assert step["type"] in TYPES
    assert set(WORKFLOW["spec"]) == {"steps"}  # no defaults: the types say how every step runs
    for step_type in TYPES.values():
        assert all("default" in p for p in step_type["spec"]["params"])  # so no step needs `with`


def test_every_step_runs_locally_with_its_types_params_at_their_defaults(capsys, tmp_path):
    report, logs = tmp_path / "report.json", tmp_path / "logs"
    code = main(["run", str(EXAMPLE), "--report", str(report), "--logs", str(logs)])
    out, _ = capsys.readouterr()
    assert code == 0, out
    status = json.loads(report.read_text())
    assert status["phase"] == "Succeeded"
    assert status["groups"] == [["validate-syntax", "security-scan"], ["provision-database"],
                                ["deploy-backend", "deploy-frontend"], ["health-check"]]
    assert {name: e["phase"] for name, e in status["steps"].items()} == dict.fromkeys(EXPECTED_LINES,
                                                                                       "Succeeded")
    for step, lines in EXPECTED_LINES.items():
        assert (logs / f"{step}.log").read_text().splitlines() == lines, step


def test_a_step_given_a_param_runs_with_it_and_the_defaults_fill_the_rest(capsys, tmp_path):
    docs = [*TYPES.values(), {**WORKFLOW, "spec": {"steps": [
        {"name": "plan-only", "type": "terraform", "with": {"COMMAND": "plan"}}]}}]
    file = tmp_path / "plan.yaml"
    file.write_text(yaml.safe_dump_all(docs))
    code = main(["run", str(file), "--logs", str(tmp_path / "logs")])
    assert code == 0, capsys.readouterr().out
    log = (tmp_path / "logs" / "plan-only.log").read_text()
    assert log.splitlines()[-1] == "terraform -chdir=infra/database plan -input=false"


def test_the_workflow_without_its_types_is_refused_naming_each_missing_type(capsys, tmp_path):
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump(WORKFLOW))
    assert main(["validate", str(alone)]) == 1
    err = capsys.readouterr().err
    for name in TYPES:
        assert f'step type "{name}"' in err
    # ... and accepted again with the types given apart (--types, T4)
    assert main(["validate", str(alone), "--types", str(EXAMPLE)]) == 0


def test_stepflow_types_lists_each_type_with_its_file_steps_and_params(capsys):
    assert main(["types", str(EXAMPLE)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "step types of platform-deploy" in out
    for name in TYPES:
        assert name in out
    assert "SEVERITY=HIGH" in out and "NAMESPACE=shop" in out
