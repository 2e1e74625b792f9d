"""`stepflow validate FILE...`: exit 0/1, one `FILE: <field path>: <reason>` line per error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builders import shorthand, step, workflow, write_workflow
from stepflow.cli import main

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
STEPFLOW = Path(sys.executable).with_name("stepflow")


def validate(capsys, *files) -> tuple[int, list[str], str]:
    code = main(["validate", *map(str, files)])
    out, err = capsys.readouterr()
    return code, err.splitlines(), out


# every G6 and D2 case: (steps, expected field path, step names the reason must quote, a word)
INVALID = {
    "non-adjacent-numbers": (shorthand("pg1 a, s b, pg1 c"), "spec.steps[2].parallelGroup", "a c b",
                             "adjacent"),
    "decreasing-numbers": (shorthand("pg3 a, pg2 b"), "spec.steps[1].parallelGroup", "a b", "increase"),
    "negative-number": ([step("a", group=-2)], "spec.steps[0].parallelGroup", "a", ">= 0"),
    "parallel-false-with-number": ([step("a", parallel=False, group=1)], "spec.steps[0].parallel", "a",
                                   "parallel: false"),
    "duplicate-names": ([step("a"), step("a")], "spec.steps[1].name", "a", "duplicate"),
    "empty-step-list": ([], "spec.steps", "", "at least one step"),
    "not-dns-1123": ([step("Build_It")], "spec.steps[0].name", "Build_It", "DNS-1123"),
    "unknown-dependency": (shorthand("s a, s b->nope"), "spec.steps[1].dependsOn[0]", "b nope", "unknown"),
    "self-reference": (shorthand("s a->a"), "spec.steps[0].dependsOn[0]", "a", "itself"),
    "cycle": (shorthand("s a->c, s b->a, s c->b"), "spec.steps[", "a b c", "cycle"),
    "cycle-through-barrier": (shorthand("s a->b, s b"), "spec.steps[0].dependsOn", "a b", "cycle"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_each_invalid_case_gives_one_error_line_naming_file_path_and_steps(tmp_path, capsys, case):
    steps, path, names, word = INVALID[case]
    file = write_workflow(tmp_path / f"{case}.yaml", workflow(*steps))
    code, lines, out = validate(capsys, file)
    assert code == 1
    assert len(lines) == 1, lines
    prefix = f"{file}: {path}"
    assert lines[0].startswith(prefix), lines[0]
    reason = lines[0].split(": ", 2)[2]
    for name in names.split():
        assert f'"{name}"' in reason, (name, reason)
    assert word in reason
    assert "valid" not in out


def test_valid_file_exits_0_and_says_so(tmp_path, capsys):
    file = write_workflow(tmp_path / "ok.yaml", workflow(*shorthand("p a, p b, s c"), name="ok",
                                                          defaults={"image": "alpine:3.20"}))
    code, lines, out = validate(capsys, file)
    assert (code, lines) == (0, [])
    assert out.strip() == f"{file}: ok: valid (3 steps in 2 groups)"


def test_every_error_of_every_file_is_listed(tmp_path, capsys):
    good = write_workflow(tmp_path / "good.yaml", workflow(step("a"), defaults={"image": "alpine:3.20"}))
    bad = write_workflow(tmp_path / "bad.yaml", workflow(step("A"), step("b", parallel="yes"),
                                                          step("c", depends_on=["zz"])))
    code, lines, out = validate(capsys, good, bad)
    assert code == 1
    assert len(lines) == 3 and all(line.startswith(f"{bad}: spec.steps[") for line in lines)
    assert f"{good}: wf: valid" in out


def test_malformed_yaml_is_a_clear_error_without_traceback(tmp_path, capsys):
    file = tmp_path / "broken.yaml"
    file.write_text("apiVersion: stepflow.dev/v1alpha1\nspec:\n  steps: [a, b\n")
    code, lines, _ = validate(capsys, file)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(f"{file}: line ")
    assert "malformed YAML" in lines[0]


def test_missing_file_and_non_workflow_document(tmp_path, capsys):
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    code, lines, _ = validate(capsys, tmp_path / "absent.yaml", listing)
    assert code == 1
    assert lines[0].startswith(f"{tmp_path / 'absent.yaml'}: (file): ")
    assert lines[1] == f"{listing}: (document): must be an object, got a list of 2 items"


def test_the_installed_command_exits_1_with_errors_on_stderr_and_no_traceback(tmp_path):
    file = tmp_path / "broken.yaml"
    file.write_text("spec: {steps: [\n")
    bad = write_workflow(tmp_path / "bad.yaml", workflow(*shorthand("pg2 a, pg1 b")))
    result = subprocess.run([str(STEPFLOW), "validate", str(file), str(bad)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{file}: line ") and "malformed YAML" in lines[0]
    assert lines[1].startswith(f"{bad}: spec.steps[1].parallelGroup: ")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(capsys, example):
    code, lines, _ = validate(capsys, example)
    assert (code, lines) == (0, [])


def test_there_are_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("case, change, path, words", [
    ("no image", lambda d: d["spec"].pop("defaults", None), "spec.steps[0].image", "no image"),
    ("1,001 steps", lambda d: d["spec"].update(steps=[step(f"s{i}") for i in range(1001)]),
     "spec.steps", "at most 1000"),
    ("bad quantity", lambda d: d["spec"]["steps"][0].update(resources={"limits": {"cpu": "lots"}}),
     "spec.steps[0].resources.limits.cpu", "quantity"),
    ("claims", lambda d: d["spec"]["steps"][0].update(resources={"claims": [{"name": "gpu"}]}),
     "spec.steps[0].resources.claims", "not supported"),
    ("huge group", lambda d: d["spec"]["steps"][0].update(parallelGroup=99999999999999999999999999),
     "spec.steps[0].parallelGroup", "<= 1000000"),
])
def test_validate_refuses_what_the_cluster_refuses(capsys, tmp_path, case, change, path, words):
    doc = workflow(step("a"), defaults={"image": "alpine:3.20"})
    change(doc)
    code, errors, _ = validate(capsys, write_workflow(tmp_path / "wf.yaml", doc))
    assert code == 1, case
    assert any(f": {path}: " in e and words in e for e in errors), errors


def test_the_documented_example_is_what_validate_prints(capsys, tmp_path, monkeypatch):
    readme = (Path(__file__).parents[2] / "docs" / "workflow-reference.md").read_text()
    document = readme.split("```yaml\n# broken.yaml\n", 1)[1].split("```", 1)[0]
    shown = readme.split("$ stepflow validate broken.yaml\n", 1)[1].split("```", 1)[0].splitlines()
    (tmp_path / "broken.yaml").write_text(document)
    monkeypatch.chdir(tmp_path)
    code, errors, _ = validate(capsys, "broken.yaml")
    assert code == 1 and errors == shown


def test_dash_reads_the_workflow_from_standard_input(tmp_path):
    text = (Path(__file__).parents[2] / "examples" / "dag.yaml").read_text()
    result = subprocess.run([str(STEPFLOW), "validate", "-"], input=text, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "-: nightly-report: valid" in result.stdout


@pytest.mark.parametrize("request_, budget, paths", [
    ("1e100000000", "4", ["spec.steps[0].resources.requests.cpu"]),
    ("2e5000", "1e5000", ["spec.maxResources.cpu", "spec.steps[0].resources.requests.cpu"]),
    ("1e-100000000", "4", ["spec.steps[0].resources.requests.cpu"]),
])
def test_a_hostile_quantity_is_refused_at_once_with_its_path(tmp_path, request_, budget, paths):
    """Issue 28, item 3: validate spun for ever on 1e100000000 and gave a traceback on 2e5000."""
    doc = workflow(step("a", resources={"requests": {"cpu": request_}}), defaults={"image": "alpine:3.20"},
                   maxResources={"cpu": budget})
    file = write_workflow(tmp_path / "wf.yaml", doc)
    result = subprocess.run([str(STEPFLOW), "validate", str(file)], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == paths, lines
    assert all("Kubernetes" in line for line in lines), lines
