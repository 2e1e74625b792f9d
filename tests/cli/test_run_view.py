"""What `stepflow run` draws of a fan-out (M6): the live view and the outcome table.
Mirror: ``operator/stepflow/cli/run_view.py``."""

from __future__ import annotations

import json
from dataclasses import replace

from rich.console import Console

from builders import plan_of, step, workflow, write_workflow
from stepflow.cli import main
from stepflow.cli.run_view import live_table, speedup_line, summary_table
from stepflow.local import LocalRun

FROM_LIST = {"fromOutput": {"step": "list", "output": "services"}}


def screen(renderable, width: int = 160) -> str:
    console = Console(width=width, height=60, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def rows_of(text: str) -> dict[str, str]:
    """Table rows by their step cell, stripped."""
    return {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") >= 3}


def test_a_local_run_shows_each_matrix_step_once_with_its_copies_under_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no cell wraps
    file = write_workflow(tmp_path / "fan.yaml", workflow(
        step("list", script="echo 'services=[\"api\",\"web\"]' >> $STEPFLOW_OUTPUTS", outputs=["services"]),
        step("deploy", matrix={"REGION": ["eu", "us"]}, script="sleep 0.2"),
        step("build", depends_on=["list"], matrix={"SVC": FROM_LIST}, script="sleep 0.2"),
        name="fan"))
    report = tmp_path / "report.json"
    code = main(["run", str(file), "--report", str(report), "--logs", str(tmp_path / "logs")])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "expanded  build (2 copies)" in out
    table = out[out.index("Succeeded: all 5 step(s) succeeded"):]
    names = [line.split("│")[1].strip() for line in table.splitlines() if line.count("│") >= 3]
    assert names == ["list", "deploy", "deploy-0 (REGION=eu)", "deploy-1 (REGION=us)",
                     "build", "build-0 (SVC=api)", "build-1 (SVC=web)"]
    status = json.loads(report.read_text())
    assert status["steps"]["deploy"]["copies"] == 2 and status["steps"]["build"]["copies"] == 2
    assert speedup_line(status) in out


def fanned_status(copies: int, failed: tuple[int, ...] = ()) -> dict:
    steps = {"deploy": {"group": 0, "index": 0, "phase": "Failed" if failed else "Succeeded",
                        "reason": "CopiesFailed" if failed else "", "copies": copies,
                        "message": f"{len(failed)} of {copies} copies failed" if failed else "all succeeded",
                        "startedAt": "2026-01-01T00:00:00.000Z", "finishedAt": "2026-01-01T00:00:10.000Z"}}
    for i in range(copies):
        steps[f"deploy-{i}"] = {"group": 0, "index": i, "phase": "Failed" if i in failed else "Succeeded",
                                "matrixOf": "deploy", "matrix": {"R": f"r{i}"},
                                "startedAt": "2026-01-01T00:00:00.000Z",
                                "finishedAt": "2026-01-01T00:00:10.000Z"}
    return {"phase": "Failed" if failed else "Succeeded", "message": "", "steps": steps,
            "startedAt": "2026-01-01T00:00:00.000Z", "finishedAt": "2026-01-01T00:00:10.000Z"}


def test_the_outcome_of_256_copies_is_a_screenful_with_the_failed_one_and_a_count():
    status = fanned_status(256, failed=(130,))
    text = screen(summary_table(status))
    rows = rows_of(text)
    assert len(rows) == 1 + 9 + 1  # the step, nine copies, the count
    assert "deploy-130 (R=r130)" in rows and "Failed" in rows["deploy-130 (R=r130)"]
    count = rows["… 247 more copies"]
    assert "247 Succeeded" in count and "--all-copies" in count
    assert rows["deploy"].split("│")[-1].strip() == "1 of 256 copies failed"  # says how many already
    assert len(rows_of(screen(summary_table(status, every_copy=True)))) == 1 + 256


def test_the_measured_speedup_counts_copies_not_their_whole():
    line = speedup_line(fanned_status(4))  # four copies of 10 s side by side, in a 10 s run
    assert "sum of step times 40s" in line and "measured speedup 4.00x" in line


def test_the_live_view_marks_a_list_from_an_output_then_shows_its_copies_in_its_place(tmp_path):
    plan = plan_of([step("list", outputs=["services"]),
                    step("build", depends_on=["list"], matrix={"SVC": FROM_LIST})])
    run = LocalRun(plan, log_dir=tmp_path / "logs")
    before = screen(live_table(run))
    assert "build \u00d7(list.services)" in before and "0/2 steps" in before
    run.states["list"] = replace(run.states["list"], phase="Succeeded", started_at=1.0, finished_at=2.0)
    run.expand({"build": ({"SVC": "api"}, {"SVC": "web"}, {"SVC": "db"})}, now=2.0)
    after = screen(live_table(run))
    assert "build-0 (SVC=api)" in after and "build-2 (SVC=db)" in after
    assert "\u00d7" not in after and "1/4 steps" in after  # list and three copies; no row for the whole
