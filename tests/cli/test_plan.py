"""`stepflow plan FILE`: groups as JSON, graphs, and the speedup estimate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builders import shorthand, step, workflow, write_workflow
from stepflow.cli import main

STEPFLOW = Path(sys.executable).with_name("stepflow")


def plan(capsys, *args) -> tuple[int, str, str]:
    code = main(["plan", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_groups_as_lists_of_names_in_document_order(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml",
                          workflow(*shorthand("pg1 a, pg1 b, s c, pg2 d, pg2 e, s f")))
    code, out, err = plan(capsys, file, "-o", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["groups"] == [["a", "b"], ["c"], ["d", "e"], ["f"]]
    c = document["steps"][2]
    assert c["waitsForGroup"] == 0 and "prerequisites" not in c  # the barrier, by reference
    assert document["groups"][c["waitsForGroup"]] == ["a", "b"]
    assert document["steps"][0]["prerequisites"] == []


def test_step_types_are_printed_as_written_never_as_markup(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a", type="[build]"),
                                                        step("b", type="deploy [/]")))
    code, out, _ = plan(capsys, file)
    assert code == 0
    assert "[build]" in out and "deploy [/]" in out


def test_invalid_file_exits_1_with_the_validate_errors(tmp_path, capsys):
    file = write_workflow(tmp_path / "bad.yaml", workflow(*shorthand("pg1 a, s b, pg1 c, s d->zz")))
    code, out, err = plan(capsys, file, "-o", "json")
    assert code == 1 and out == ""
    assert main(["validate", str(file)]) == 1
    _, validate_err = capsys.readouterr()
    assert err == validate_err
    assert len(err.splitlines()) == 2


def test_durations_give_the_ideal_speedup(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml", workflow(*shorthand("p a, p b, p c, s d")))
    code, out, _ = plan(capsys, file, "-o", "json", "--durations", "a=2,b=2,c=2,d=1")
    assert code == 0
    estimate = json.loads(out)["estimate"]
    assert estimate["sequentialSeconds"] == 7 and estimate["criticalPathSeconds"] == 3
    assert estimate["idealSpeedup"] == 2.33
    assert estimate["criticalPath"] in (["a", "d"], ["b", "d"], ["c", "d"])


def test_durations_from_a_json_file_and_from_estimated_seconds(tmp_path, capsys):
    steps = [step("a", parallel=True, estimatedSeconds=4), step("b", parallel=True, estimatedSeconds=4)]
    file = write_workflow(tmp_path / "wf.yaml", workflow(*steps))
    code, out, _ = plan(capsys, file, "-o", "json")
    assert json.loads(out)["estimate"]["idealSpeedup"] == 2.0
    durations = tmp_path / "d.json"
    durations.write_text(json.dumps({"a": 1, "b": 3}))
    code, out, _ = plan(capsys, file, "-o", "json", "--durations", durations)
    assert code == 0 and json.loads(out)["estimate"]["criticalPathSeconds"] == 3


def test_durations_naming_an_unknown_step_is_an_error(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a")))
    code, _, err = plan(capsys, file, "--durations", "a=1,ghost=2")
    assert code == 1 and "ghost" in err and err.startswith(f"{file}: --durations: ")


@pytest.mark.parametrize("option", ["a=inf", "a=-5", "a=nan", "a", "a=1,b", "list.json"])
def test_bad_durations_are_a_clear_error_not_a_traceback(tmp_path, capsys, option):
    file = write_workflow(tmp_path / "wf.yaml", workflow(*shorthand("s a, s b")))
    (tmp_path / "list.json").write_text("[1, 2]")
    code, _, err = plan(capsys, file, "--durations", tmp_path / option if option.endswith(".json")
                        else option)
    assert code == 1 and err.startswith(f"{file}: --durations: ") and "Traceback" not in err


@pytest.mark.parametrize("value", [".nan", ".inf", "-1"])
def test_estimated_seconds_must_be_finite(tmp_path, capsys, value):
    file = tmp_path / "wf.yaml"
    file.write_text("apiVersion: stepflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: est}\n"
                    f"spec:\n  steps:\n    - {{name: a, script: 'true', estimatedSeconds: {value}}}\n")
    code, _, err = plan(capsys, file)
    assert code == 1 and 'spec.steps[0].estimatedSeconds: step "a": must be a finite number' in err


def test_durations_with_a_dependency_on_a_later_step(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml", workflow(*shorthand("s a->b, s b->")))
    code, out, _ = plan(capsys, file, "-o", "json", "--durations", "a=1,b=2")
    assert code == 0 and json.loads(out)["estimate"]["criticalPath"] == ["b", "a"]


def test_text_output_shows_groups_and_the_estimate(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml", workflow(*shorthand("p lint, p test, s ship"), name="rel"))
    code, out, _ = plan(capsys, file, "--durations", "lint=1,test=3,ship=1")
    assert code == 0
    assert "plan of rel: 3 steps in 2 groups" in out
    assert "ideal speedup 1.25x" in out and "lint" in out and "ship" in out


def test_mermaid_and_dot(tmp_path, capsys):
    file = write_workflow(tmp_path / "wf.yaml", workflow(*shorthand("p a, p b, s c")))
    assert plan(capsys, file, "-o", "mermaid")[1].startswith("flowchart TD")
    assert plan(capsys, file, "-o", "dot")[1].startswith('digraph "wf"')


def test_piping_into_a_reader_that_leaves_early_is_not_a_traceback(tmp_path):
    """`stepflow plan -o json | head -1` on a large plan."""
    file = write_workflow(tmp_path / "big.yaml", workflow(*[step(f"s{i}") for i in range(1000)]))
    pipeline = f"{STEPFLOW} plan {file} -o json | head -1"
    result = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True, timeout=60)
    assert result.stdout == "{\n"
    assert "Traceback" not in result.stderr, result.stderr


def test_a_file_of_several_workflows_is_read_alike_and_plan_takes_one_by_name(tmp_path, capsys):
    first = workflow(*shorthand("p a, p b"), name="first")
    second = workflow(*shorthand("s c"), name="second")
    file = tmp_path / "two.yaml"
    file.write_text(yaml.safe_dump(first) + "---\n" + yaml.safe_dump(second))
    code, out, err = plan(capsys, file, "-o", "json")
    assert code == 1 and "holds 2 Workflows (first, second); choose one with --name" in err
    code, out, _ = plan(capsys, file, "-o", "json", "--name", "second")
    assert code == 0 and json.loads(out)["groups"] == [["c"]]
    code, _, err = plan(capsys, file, "--name", "third")
    assert code == 1 and 'holds no Workflow "third"' in err


# --- fan-out (M6) ------------------------------------------------------------------------------

FROM_LIST = {"fromOutput": {"step": "list", "output": "services"}}


def fan_file(tmp_path, deploy_values=("eu", "us"), tiers=("a", "b")) -> Path:
    return write_workflow(tmp_path / "fan.yaml", workflow(
        step("list", outputs=["services"]),
        step("deploy", matrix={"region": list(deploy_values), "tier": list(tiers)}),
        step("build", depends_on=["list"], matrix={"svc": FROM_LIST}),
        step("report", depends_on=["build", "deploy"]), name="fan"))


def wide_plan(capsys, *args) -> tuple[int, str, str]:
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, {"COLUMNS": "200"}):
        return plan(capsys, *args)


def test_text_shows_each_copy_with_its_values_and_a_list_from_an_output_as_one_row(tmp_path, capsys):
    code, out, _ = wide_plan(capsys, fan_file(tmp_path))
    assert code == 0
    assert "plan of fan: 7 steps in 4 groups (4 of them copies of 1 matrix step(s))" in out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") >= 6}
    assert "copy of deploy: region=eu tier=a" in rows["deploy-0"]
    assert "copy of deploy: region=us tier=b" in rows["deploy-3"]
    assert "fan-out over output services of list" in rows["build"]
    assert "dependsOn: build, deploy (4 copies)" in rows["report"]  # not the four copies' names
    assert "deploy" not in rows and "deploy-0" in rows  # the copies are the rows, not the step they replace


def test_json_lists_each_copy_with_its_step_and_values_and_the_unexpanded_matrix_as_written(tmp_path, capsys):
    code, out, _ = plan(capsys, fan_file(tmp_path), "-o", "json")
    assert code == 0
    document = json.loads(out)
    steps = {s["name"]: s for s in document["steps"]}
    assert document["groups"][1] == ["deploy-0", "deploy-1", "deploy-2", "deploy-3"]
    assert steps["deploy-2"]["matrixOf"] == "deploy" and steps["deploy-2"]["matrix"] == {"region": "us",
                                                                                        "tier": "a"}
    assert "deploy" not in steps
    assert steps["build"]["matrix"] == {"svc": FROM_LIST} and "matrixOf" not in steps["build"]
    assert steps["report"]["dependsOn"] == ["build", "deploy-0", "deploy-1", "deploy-2", "deploy-3"]


def test_a_duration_given_to_a_matrix_step_is_each_copys_and_the_critical_path_runs_through_one(
        tmp_path, capsys):
    code, out, err = plan(capsys, fan_file(tmp_path), "-o", "json", "--durations",
                          "list=1,deploy=10,deploy-3=30,build=2,report=1")
    assert (code, err) == (0, "")
    estimate = json.loads(out)["estimate"]
    assert estimate["sequentialSeconds"] == 1 + 10 * 3 + 30 + 2 + 1
    assert estimate["criticalPath"] == ["list", "deploy-3", "report"]
    assert estimate["criticalPathSeconds"] == 32
    assert estimate["fanOutAtRunTime"] == ["build"] and estimate["missing"] == []
    _, text, _ = wide_plan(capsys, fan_file(tmp_path), "--durations", "list=1")
    assert "no estimate for: deploy (4 copies), build, report" in text
    assert "build: fans out when it runs, counted here as one step" in text


def test_a_256_copy_matrix_keeps_the_text_table_short(tmp_path, capsys):
    file = write_workflow(tmp_path / "big.yaml", workflow(
        step("deploy", matrix={"a": [str(i) for i in range(16)], "b": [str(i) for i in range(16)]}),
        step("after", depends_on=["deploy"])))
    code, out, _ = wide_plan(capsys, file)
    assert code == 0 and "258 steps" not in out and "257 steps" in out
    assert len(out.splitlines()) < 30
    assert "deploy-8 " in out and "deploy-9 " not in out and "… 247 more copies of deploy" in out
    assert "dependsOn: deploy (256 copies)" in out
    for output in ("mermaid", "dot"):
        assert len(plan(capsys, file, "-o", output)[1]) < 2_000
