"""`stepflow validate` on outputs, conditions and finally steps (O1, O3, O4, W2, X2): exit 1,
and a `FILE: <field path>: <reason>` line per error, naming the steps involved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builders import step, workflow, write_workflow
from stepflow.cli import main

STEPFLOW = Path(sys.executable).with_name("stepflow")


def reads(var, producer, output):
    return {"name": var, "valueFrom": {"stepOutput": {"step": producer, "output": output}}}


def with_finally(*final, steps):
    doc = workflow(*steps)
    doc["spec"]["finally"] = list(final)
    return doc


TAG = step("build", outputs=["tag"])
# case: (document, expected field path, words the reason must contain)
INVALID = {
    "unknown-producer": (workflow(TAG, step("deploy", env=[reads("T", "biuld", "tag")])),
                         "spec.steps[1].env[0].valueFrom.stepOutput",
                         ['step "deploy"', 'unknown step "biuld"', '"build"']),
    "undeclared-output": (workflow(TAG, step("deploy", env=[reads("T", "build", "digest")])),
                          "spec.steps[1].env[0].valueFrom.stepOutput",
                          ['output "digest" of step "build"', "its outputs: tag"]),
    "not-a-prerequisite": (workflow(step("build", parallel=True, outputs=["tag"]),
                                    step("deploy", parallel=True, env=[reads("T", "build", "tag")])),
                           "spec.steps[1].env[0].valueFrom.stepOutput",
                           ['step "deploy" reads step "build"', "not a prerequisite"]),
    "pasted-into-script": (workflow(TAG, step("deploy", script="echo $(T)",
                                              env=[reads("T", "build", "tag")])),
                           "spec.steps[1].script", ['step "deploy"', "$(T)", '"$T"']),
    # Issue 28, item 1: the two shapes that got through, read as Kubernetes expands them.
    "pasted-through-another-variable": (
        workflow(TAG, step("deploy", script="echo $(MSG)",
                           env=[reads("TITLE", "build", "tag"), {"name": "MSG", "value": "PR: $(TITLE)"}])),
        "spec.steps[1].script", ['step "deploy"', "$(MSG)", "$(TITLE)", "TITLE -> MSG", '"$MSG"']),
    "pasted-after-an-escaped-dollar": (
        workflow(TAG, step("deploy", script="echo price: $$$(TITLE)", env=[reads("TITLE", "build", "tag")])),
        "spec.steps[1].script", ['step "deploy"', "$(TITLE)", '"$TITLE"']),
    "bad-output-name": (workflow(step("build", outputs=["1tag"])), "spec.steps[0].outputs[0]",
                        ['step "build"', "not an output name"]),
    "duplicate-output": (workflow(step("build", outputs=["tag", "tag"])), "spec.steps[0].outputs[1]",
                         ['step "build"', 'output "tag" twice']),
    "when-syntax-error": (workflow(TAG, step("deploy", when="steps.build.phase == ")),
                          "spec.steps[1].when", ['step "deploy"', "column 22", "steps.build.phase == ^"]),
    "when-not-boolean": (workflow(TAG, step("deploy", when="steps.build.outputs.tag")),
                         "spec.steps[1].when", ['step "deploy"', "must be a boolean expression"]),
    "when-type-mismatch": (workflow(TAG, step("deploy", when="steps.build.exitCode == 'zero'")),
                           "spec.steps[1].when", ['step "deploy"', "no matching overload"]),
    "when-not-a-prerequisite": (workflow(step("build", parallel=True), step("deploy", parallel=True,
                                                                            when="steps.build.phase == 'x'")),
                                "spec.steps[1].when", ['step "deploy" reads (in when) step "build"',
                                                       "not a prerequisite"]),
    "main-reads-finally": (with_finally(step("notify", outputs=["x"]),
                                        steps=[step("a", env=[reads("X", "notify", "x")])]),
                           "spec.steps[0].env[0].valueFrom.stepOutput",
                           ['step "a" reads step "notify"', "a finally step"]),
    "finally-depends-on-main": (with_finally(step("notify", depends_on=["a"]), steps=[step("a")]),
                                "spec.finally[0].dependsOn[0]",
                                ['step "notify"', '"a"', "finally steps only"]),
    "name-in-both-lists": (with_finally(step("a"), steps=[step("a")]), "spec.finally[0].name",
                           ['"a"', "duplicate"]),
    "wrong-type-names-the-step": (workflow(step("build", parallel="yes")), "spec.steps[0].parallel",
                                  ['step "build"', "boolean"]),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_each_new_invalid_case_exits_1_with_path_and_steps(tmp_path, capsys, case):
    doc, path, words = INVALID[case]
    file = write_workflow(tmp_path / f"{case}.yaml", doc)
    code = main(["validate", str(file)])
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{file}: {path}: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_every_dataflow_error_of_a_file_is_listed_at_once(tmp_path, capsys):
    doc = workflow(TAG, step("deploy", when="steps.build.phase == ",
                             env=[reads("T", "build", "digest"), reads("U", "ghost", "x")]))
    file = write_workflow(tmp_path / "many.yaml", doc)
    assert main(["validate", str(file)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "spec.steps[1].env[0].valueFrom.stepOutput", "spec.steps[1].env[1].valueFrom.stepOutput",
        "spec.steps[1].when"], lines


def test_the_installed_command_shows_the_caret_of_a_cel_syntax_error(tmp_path):
    doc = workflow(TAG, step("deploy", when="steps.build.phase = 'x'"))
    file = write_workflow(tmp_path / "caret.yaml", doc)
    done = subprocess.run([str(STEPFLOW), "validate", str(file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{file}: spec.steps[1].when: " in done.stderr
    assert "^" in done.stderr and "column" in done.stderr, done.stderr
