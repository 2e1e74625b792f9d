"""`stepflow run FILE --report PATH`: exit codes, the report, and Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import shorthand, step, workflow, write_workflow
from stepflow.cli import main
from stepflow.status import parse_time

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
STEPFLOW = Path(sys.executable).with_name("stepflow")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def run(capsys, tmp_path, file, *extra) -> tuple[int, dict | None, str, str]:
    report = tmp_path / "report.json"
    code = main(["run", str(file), "--report", str(report), "--logs", str(tmp_path / "logs"), *extra])
    out, err = capsys.readouterr()
    return code, json.loads(report.read_text()) if report.exists() else None, out, err


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_to_success(capsys, tmp_path, example):
    code, report, out, _ = run(capsys, tmp_path, example)
    assert code == 0, out
    assert report["phase"] == "Succeeded"
    # Every step ran, but those a condition skips on success (release-pipeline's alert).
    assert all(e["phase"] == "Succeeded" or e["reason"] == "ConditionFalse" for e in report["steps"].values())
    assert "measured speedup" in out


@pytest.mark.parametrize("broken", ["build", "test"])
def test_the_release_example_notifies_whatever_happened(capsys, tmp_path, broken):
    """Its header says notify reports whatever happened: when build or test fails, notify still
    runs (build's tag has a default), alert fires, and deploy never starts."""
    import yaml

    doc = yaml.safe_load((EXAMPLES[0].parent / "release-pipeline.yaml").read_text())
    next(s for s in doc["spec"]["steps"] if s["name"] == broken)["script"] = "exit 4"
    file = write_workflow(tmp_path / "release.yaml", doc)
    code, report, _, _ = run(capsys, tmp_path, file)
    assert code == 1 and report["phase"] == "Failed"
    steps = report["steps"]
    assert steps["deploy"]["phase"] == "Skipped"
    assert steps["notify"]["phase"] == "Succeeded" and steps["alert"]["phase"] == "Succeeded"
    image = "none" if broken == "build" else "v1.4.2"
    assert (tmp_path / "logs" / "notify.log").read_text().strip() == f"release finished; image: app:{image}"


def test_report_is_the_status_document_with_millisecond_timestamps(capsys, tmp_path):
    file = write_workflow(tmp_path / "wf.yaml", workflow(*shorthand("p a, p b, s c"), name="rep"))
    code, report, _, _ = run(capsys, tmp_path, file)
    assert code == 0
    assert report["groups"] == [["a", "b"], ["c"]]
    assert report["progress"] == "3/3"
    assert RFC3339_MS.match(report["startedAt"]) and RFC3339_MS.match(report["finishedAt"])
    for entry in report["steps"].values():
        assert RFC3339_MS.match(entry["startedAt"]) and RFC3339_MS.match(entry["finishedAt"])
    assert {c["type"]: c["status"] for c in report["conditions"]}["Ready"] == "True"


def test_failed_workflow_exits_1_with_the_failure_in_the_report(capsys, tmp_path):
    steps = [step("a", script="echo nope >&2; exit 5"), step("b")]
    file = write_workflow(tmp_path / "wf.yaml", workflow(*steps))
    code, report, out, _ = run(capsys, tmp_path, file)
    assert code == 1
    assert report["phase"] == "Failed" and '"a"' in report["message"]
    assert report["steps"]["a"]["exitCode"] == 5 and "nope" in report["steps"]["a"]["terminationMessage"]
    assert report["steps"]["b"]["phase"] == "Skipped"
    assert "exited with code 5" in out and "exit code 5; exited" not in out  # said once


def test_text_from_the_workflow_is_printed_as_written_never_as_markup(capsys, tmp_path):
    steps = [{"name": "a", "command": ["[/]not-here"]}, step("b")]
    file = write_workflow(tmp_path / "wf.yaml", workflow(*steps))
    code, report, out, _ = run(capsys, tmp_path, file)
    assert code == 1 and report is not None  # no MarkupError, and the report is written
    assert "cannot start '[/]not-here'" in " ".join(out.split())


@pytest.mark.parametrize("option", ["--report", "--logs"])
def test_an_unwritable_report_or_log_path_is_refused_before_anything_runs(capsys, tmp_path, option):
    marker = tmp_path / "ran"
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a", script=f"touch {marker}")))
    (tmp_path / "a-file").write_text("")
    bad = tmp_path / "a-file" / "below"  # a path under a regular file
    good = {"--report": str(tmp_path / "report.json"), "--logs": str(tmp_path / "logs")}
    code = main(["run", str(file), *[arg for name, path in good.items()
                                     for arg in (name, str(bad) if name == option else path)]])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and str(bad) in err
    assert not marker.exists()


def test_invalid_file_exits_1_with_the_validate_errors_and_runs_nothing(capsys, tmp_path):
    marker = tmp_path / "ran"
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a", script=f"touch {marker}"),
                                                         step("b", depends_on=["a", "b"])))
    code, report, _, err = run(capsys, tmp_path, file)
    assert code == 1 and report is None and not marker.exists()
    assert err.strip() == f'{file}: spec.steps[1].dependsOn[1]: step "b" depends on itself'


def test_max_concurrency_option_and_timeline(capsys, tmp_path):
    steps = [step(f"s{i}", parallel=True, script="sleep 0.2") for i in range(3)]
    file = write_workflow(tmp_path / "wf.yaml", workflow(*steps))
    code, report, out, _ = run(capsys, tmp_path, file, "--max-concurrency", "1", "--timeline")
    assert code == 0
    spans = sorted((parse_time(e["startedAt"]), parse_time(e["finishedAt"]))
                   for e in report["steps"].values())
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2))  # one at a time
    assert "timeline" in out


def test_fields_a_local_run_cannot_honour_are_mentioned(capsys, tmp_path):
    secured = step("a", image="alpine:3.20", securityContext={"runAsNonRoot": True},
                   nodeSelector={"disktype": "ssd"})
    file = write_workflow(tmp_path / "wf.yaml", workflow(secured))
    code, _, out, _ = run(capsys, tmp_path, file)
    assert code == 0 and "image is ignored" in out
    ignored = "securityContext, podSecurityContext, tolerations and nodeSelector are ignored"
    assert ignored in " ".join(out.split())


def test_pool_limits_come_from_the_command_line_and_a_pool_without_one_is_said_unlimited(capsys, tmp_path):
    steps = [step(f"s{i}", parallel=True, script="sleep 0.2", pool="deploys") for i in range(3)]
    steps.append(step("other", parallel=True, pool="free"))
    file = write_workflow(tmp_path / "wf.yaml", workflow(*steps, queueName="team-a"))
    code, report, out, _ = run(capsys, tmp_path, file, "--pool", "deploys=1", "--pool", "typo=3")
    assert code == 0
    spans = sorted((parse_time(report["steps"][f"s{i}"]["startedAt"]),
                    parse_time(report["steps"][f"s{i}"]["finishedAt"])) for i in range(3))
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2))  # a mutex: one at a time
    text = " ".join(out.split())
    assert 'StepPool "free" has no limit in a local run' in text
    assert "--pool typo: no step of this workflow uses that pool" in text
    assert "queueName is ignored locally" in text


@pytest.mark.parametrize("value", ["deploys", "=1", "deploys=0", "deploys=many"])
def test_a_malformed_pool_option_is_refused_with_the_expected_form(capsys, tmp_path, value):
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a", pool="deploys")))
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(file), "--pool", value])
    assert exit_.value.code == 2
    assert "--pool" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT],
                         ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_exits_130_writes_the_report_and_kills_the_children(tmp_path, sig):
    started, finished = tmp_path / "started", tmp_path / "finished"
    steps = [step("a", parallel=True, script=f"touch {started}; sleep 1.5; touch {finished}"),
             step("b", parallel=True, script="sleep 1.5"), step("c", script="true")]
    file = write_workflow(tmp_path / "wf.yaml", workflow(*steps))
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [str(STEPFLOW), "run", str(file), "--report", str(report), "--logs", str(tmp_path / "logs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline and process.poll() is None, "the run never started"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    status = json.loads(report.read_text())
    assert {n: e["phase"] for n, e in status["steps"].items()} == {
        "a": "Cancelled", "b": "Cancelled", "c": "Skipped"}
    assert status["steps"]["a"]["reason"] == "Interrupted"
    assert status["phase"] == "Failed"
    time.sleep(max(0.0, sent + 1.8 - time.monotonic()))
    assert not finished.exists(), "a step's process outlived the interrupted run"


def test_the_runner_stops_its_steps_when_its_parent_dies(tmp_path):
    """A killed CI runner or a dropped ssh session: the parent goes without a signal to us."""
    started, finished = tmp_path / "started", tmp_path / "finished"
    file = write_workflow(tmp_path / "wf.yaml", workflow(
        step("a", script=f"touch {started}; sleep 1.5; touch {finished}"), step("b", script="true")))
    report = tmp_path / "report.json"
    parent = subprocess.Popen(
        ["sh", "-c", f'"{STEPFLOW}" run "{file}" --report "{report}" --logs "{tmp_path / "logs"}" '
                     ">/dev/null 2>&1 & wait"], env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 30
        while not started.exists():
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        sent = time.monotonic()
        parent.kill()  # SIGKILL: the runner is orphaned
        parent.wait(10)
        while not (report.exists() and report.stat().st_size):
            assert time.monotonic() < sent + 15, "no report after the parent died"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
    time.sleep(0.2)
    status = json.loads(report.read_text())
    assert status["steps"]["a"]["phase"] == "Cancelled" and status["steps"]["b"]["phase"] == "Skipped"
    time.sleep(max(0.0, sent + 1.8 - time.monotonic()))
    assert not finished.exists(), "the step outlived its orphaned run"



def test_the_live_view_keeps_running_and_failed_steps_visible_when_rows_run_out(tmp_path):
    from dataclasses import replace

    from rich.console import Console

    from builders import plan_of
    from stepflow.cli.run_view import live_table
    from stepflow.local import LocalRun

    plan = plan_of([step(f"s{i:03d}") for i in range(200)])
    run = LocalRun(plan, log_dir=tmp_path / "logs")
    for i in range(150):
        run.states[f"s{i:03d}"] = replace(run.states[f"s{i:03d}"], phase="Succeeded", started_at=1.0,
                                          finished_at=2.0 + i)
    run.states["s040"] = replace(run.states["s040"], phase="Failed", finished_at=3.0)
    run.states["s150"] = replace(run.states["s150"], phase="Running", started_at=200.0)
    console = Console(width=100, height=30, record=True, color_system=None)
    console.print(live_table(run, 24))
    screen = console.export_text()
    assert "s150" in screen and "Running" in screen  # what runs now
    assert "s040" in screen and "Failed" in screen  # what failed, long ago
    assert "s151" in screen  # up next
    assert "more step(s) not shown" in screen and "150/200 steps" in screen
    assert len(screen.splitlines()) <= 30


def test_a_suspended_workflow_is_refused_locally_rather_than_run_or_left_waiting(capsys, tmp_path):
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a"), suspend=True))
    code, report, _, err = run(capsys, tmp_path, file)
    assert code == 1 and report is None and "spec.suspend" in err


@pytest.mark.parametrize("lines_read", [0, 1, 3])
@pytest.mark.parametrize("outcome", ["true", "exit 4"])
def test_a_run_whose_stdout_is_closed_still_runs_its_finally_steps_and_writes_its_report(
        tmp_path, lines_read, outcome):
    """`stepflow run ... | head -3`: the reader goes away after a few lines (or at once); the run
    carries on, its finally step runs, its report is written, and it exits as it would have."""
    doc = workflow(step("a", script="sleep 0.2"), step("b", script=f"sleep 0.2; {outcome}"),
                   step("c", script="sleep 0.2"))
    doc["spec"]["finally"] = [step("notify", script=f"touch {tmp_path / 'notified'}")]
    file = write_workflow(tmp_path / "wf.yaml", doc)
    report = tmp_path / "report.json"
    read_end, write_end = os.pipe()
    process = subprocess.Popen([str(STEPFLOW), "run", str(file), "--report", str(report), "--logs",
                                str(tmp_path / "logs")], stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    with os.fdopen(read_end) as reader:  # `head -N`: read N lines, then close the pipe
        for _ in range(lines_read):
            reader.readline()
    _, err = process.communicate(timeout=60)
    failed = outcome != "true"
    assert process.returncode == (1 if failed else 0), err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    status = json.loads(report.read_text())
    assert status["phase"] == ("Failed" if failed else "Succeeded")
    assert status["steps"]["notify"]["phase"] == "Succeeded" and (tmp_path / "notified").exists()
    assert status["steps"]["c"]["phase"] == ("Skipped" if failed else "Succeeded")
