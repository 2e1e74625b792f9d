"""The cluster commands of ``stepflow`` on the real control plane (tests/kube/), with the real
operator running.

Mirror: ``operator/stepflow/cli/cluster.py``. Two scenes on the session's control plane keep the
file quick, each with an operator of its own that serves only its namespaces: ``phases`` holds
one workflow in every phase, in ``default`` and ``team-b``, and is only read; ``steering`` is a
namespace where the tests that suspend, resume and rerun work, each on workflows of its own.
Step pods end as their annotations script them (tests/kube/stages.yaml), or when a test
releases a held one.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from kube.controlplane import ControlPlane, kubeconfig
from kube.realcluster import Kube, step, wait_for, workflow
from operator_harness import ROOT, free_port, operators, stop_process
from stepflow.cli import main
from stepflow.cli.cluster import status_view
from stepflow.palette import PHASE_FILLS
from stepflow.timeline import Row, bar_columns

BAR = "█"
STEERING = "cli-steering"


@dataclass
class Scene:
    """Workflows in one namespace (``kube``, as the admin) and a kubeconfig whose context
    defaults to that namespace, as a user's does."""

    kube: Kube
    kubeconfig: Path

    def status(self, name: str) -> dict[str, Any]:
        return self.kube.status(name)


def every_workflow(kube: Kube) -> list[dict[str, Any]]:
    return kube.api.request("GET", "/apis/stepflow.dev/v1alpha1/workflows")["items"]


@contextlib.contextmanager
def _scene(plane: ControlPlane, credentials: Path, tmp: Path, namespaces: list[str],
           *args: str) -> Iterator[Scene]:
    """The namespaces (made if missing) and an operator serving them alone with ``args``; at
    the end the operator stops and the scene's workflows go, with their Jobs and pods."""
    homes = [Kube(plane, namespace) for namespace in namespaces]
    for home in homes:
        if home.get("namespaces", home.namespace) is None:
            home.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": home.namespace}})
        wait_for(lambda home=home: home.get("serviceaccounts", "default"))
    config = yaml.safe_load(plane.kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = namespaces[0]
    (tmp / "kubeconfig").write_text(yaml.safe_dump(config))
    try:
        with operators(credentials, tmp, refused=("forbidden",)) as start:
            start(*args, *(f"--namespace={namespace}" for namespace in namespaces))
            yield Scene(homes[0], tmp / "kubeconfig")
    finally:
        for home in homes:
            if home.namespace == "default":
                for item in home.objects("workflows"):
                    home.delete("workflows", item["metadata"]["name"])
            else:
                home.delete("namespaces", home.namespace)


@pytest.fixture(scope="module")
def phases(control_plane: ControlPlane, operator_kubeconfig: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Workflows in every phase, under an operator-wide cap of 2 running steps.

    done (Succeeded): [a b] [c] [d e];  broken (Failed): [x(exit 3) y] [z skipped];
    invalid (Failed, InvalidSpec); busy (Running, holds both slots); waiting (Pending, no slot);
    paused (Suspended); team-b/other (Succeeded, another namespace).
    """
    with _scene(control_plane, operator_kubeconfig, tmp_path_factory.mktemp("phases"),
                ["default", "team-b"], "--max-running-jobs", "2") as scene:
        kube, team_b = scene.kube, Kube(control_plane, "team-b")
        # Only this scene's workflows anywhere (earlier tests' namespaces may still be going),
        # so that `list -A` shows exactly them.
        wait_for(lambda: all(w["metadata"]["namespace"] in ("default", "team-b")
                             for w in every_workflow(kube)), timeout=60)
        # One after another: under the cap, two workflows at once would share the two slots.
        for home, body in (
            (kube, workflow("done", [step("a", "600ms", parallel=True), step("b", "300ms", parallel=True),
                                     step("c", "400ms"), step("d", "300ms", parallel=True),
                                     step("e", "300ms", parallel=True)])),
            (kube, workflow("broken", [step("x", "200ms", exit_code=3, message="disk full\n", parallel=True),
                                       step("y", "400ms", parallel=True), step("z")])),
            (kube, workflow("invalid", [step("p", dependsOn=["missing"])])),
            (team_b, workflow("other", [step("solo")])),
        ):
            home.create(body)
            home.wait_phase(body["metadata"]["name"])
        [pod] = kube.pods("done-1-a")
        kube.set_pod_log(pod["metadata"]["name"], "hello from a\nsecond line\n")
        kube.create(workflow("busy", [step("long1", hold=True, parallel=True),
                                      step("long2", hold=True, parallel=True), step("after")]))
        wait_for(lambda: kube.status("busy").get("progress") == "0/3" and all(
            kube.status("busy")["steps"][s]["phase"] == "Running" for s in ("long1", "long2")))
        kube.create(workflow("waiting", [step("w")]))
        wait_for(lambda: kube.status("waiting").get("reason") == "WaitingForSlot")
        kube.create(workflow("paused", [step("p1"), step("p2")], suspend=True))
        kube.wait_phase("paused", ["Suspended"])
        yield scene


@pytest.fixture(scope="module")
def steering(control_plane: ControlPlane, operator_kubeconfig: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A namespace with an uncapped operator, for the commands that change workflows."""
    with _scene(control_plane, operator_kubeconfig, tmp_path_factory.mktemp("steering"), [STEERING]) as scene:
        yield scene


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``stepflow ARGS --kubeconfig <scene's>`` in-process, on a 200-column plain console."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.delenv("FORCE_COLOR", raising=False)

    def run(scene: Scene, *argv: str, kubeconfig: Path | None = None) -> Result:
        capsys.readouterr()
        error = ""
        try:
            code = main([*argv, "--kubeconfig", str(kubeconfig or scene.kubeconfig)])
        except SystemExit as exc:  # what the interpreter would do with it
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            error = f"{exc.code}\n" if isinstance(exc.code, str) else ""
        out, err = capsys.readouterr()
        return Result(code, out, err + error)

    return run


def by_name(result: Result, column: int) -> dict[str, list[str]]:
    """Table rows keyed by the word in ``column`` (list: 1 = NAME; status: 1 = STEP)."""
    rows = {}
    for line in result.out.splitlines():
        words = line.split()
        if len(words) > column:
            rows[words[column]] = words
    return rows


# --- list --------------------------------------------------------------------------------------

def test_list_shows_namespace_name_phase_and_progress_of_every_workflow(phases, cli):
    result = cli(phases, "list")
    assert result.code == 0, result.err
    header, *lines = [line for line in result.out.splitlines() if line.strip()]
    assert header.split() == ["NAMESPACE", "NAME", "PHASE", "PROGRESS", "AGE", "DURATION"]
    rows = {line.split()[1]: line.split() for line in lines}
    assert sorted(rows) == ["broken", "busy", "done", "invalid", "paused", "waiting"]  # not team-b's
    assert rows["done"][:4] == ["default", "done", "Succeeded", "5/5"]
    assert rows["broken"][:4] == ["default", "broken", "Failed", "3/3"]  # steps over
    assert rows["busy"][:4] == ["default", "busy", "Running", "0/3"]
    assert rows["waiting"][:4] == ["default", "waiting", "Pending", "0/1"]
    assert rows["paused"][:4] == ["default", "paused", "Suspended", "0/2"]
    assert rows["invalid"][:3] == ["default", "invalid", "Failed"]
    assert len(rows["done"]) == 6  # an age and a duration
    assert [line.split()[1] for line in lines] == sorted(rows)  # sorted by name


def test_list_scopes_namespaces_like_kubectl(phases, cli):
    only_b = cli(phases, "list", "-n", "team-b")
    assert [line.split()[:4] for line in only_b.out.splitlines()[1:] if line.strip()] == [
        ["team-b", "other", "Succeeded", "1/1"]]

    everywhere = cli(phases, "list", "-A")
    keys = [tuple(line.split()[:2]) for line in everywhere.out.splitlines()[1:] if line.strip()]
    assert ("team-b", "other") in keys and ("default", "done") in keys
    assert len(keys) == 7 and keys == sorted(keys)

    empty = cli(phases, "list", "-n", "nobody-here")
    assert empty.code == 0 and empty.out == ""
    assert "No workflows found in nobody-here" in empty.err


def test_context_sets_the_default_namespace(phases, cli, tmp_path):
    config = yaml.safe_load(phases.kubeconfig.read_text())
    config["contexts"].append({"name": "team-b", "context": {"cluster": "stepflow-test", "user": "user",
                                                             "namespace": "team-b"}})
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(config))
    result = cli(phases, "list", "--context", "team-b", kubeconfig=path)
    names = [line.split()[1] for line in result.out.splitlines()[1:] if line.strip()]
    assert names == ["other"]


# --- status ------------------------------------------------------------------------------------

def test_status_shows_one_line_per_step_with_group_phase_job_and_failure_details(phases, cli):
    result = cli(phases, "status", "broken")
    assert result.code == 0, result.err
    title = result.out.splitlines()[0]
    assert title.startswith("default/broken: Failed 3/3") and '"x"' in title
    rows = by_name(result, 1)
    assert [w[:3] for w in (rows["x"], rows["y"], rows["z"])] == [
        ["1", "x", "Failed"], ["1", "y", "Succeeded"], ["2", "z", "Skipped"]]
    assert "broken-1-x" in rows["x"] and "broken-1-y" in rows["y"]
    failed = " ".join(rows["x"])
    assert "exit code 3" in failed and "BackoffLimitExceeded" in failed and "disk full" in failed
    skipped = " ".join(rows["z"])
    assert "broken-1-z" not in skipped and '"x"' in skipped  # the reason names the upstream step


def test_status_of_running_pending_suspended_and_invalid_workflows(phases, cli):
    busy = by_name(cli(phases, "status", "busy"), 1)
    assert busy["long1"][:3] == ["1", "long1", "Running"] and "busy-1-long1" in busy["long1"]
    assert busy["long2"][:3] == ["1", "long2", "Running"] and "busy-1-long2" in busy["long2"]
    assert busy["after"][:3] == ["2", "after", "Pending"]

    waiting = cli(phases, "status", "waiting")
    assert waiting.out.startswith("default/waiting: Pending")
    assert by_name(waiting, 1)["w"][:4] == ["1", "w", "Pending", "WaitingForSlot:"]

    paused = cli(phases, "status", "paused")
    assert paused.out.startswith("default/paused: Suspended")
    assert {name: words[2] for name, words in by_name(paused, 1).items() if name.startswith("p")} == {
        "p1": "Pending", "p2": "Pending"}

    invalid = cli(phases, "status", "invalid")
    assert invalid.code == 0
    assert invalid.out.startswith("default/invalid: Failed") and 'unknown step "missing"' in invalid.out


def test_status_never_shows_a_step_ending_before_it_started(steering, cli):
    # Pods that end at once: a step's start and end nearly always share a second.
    steps = [step(f"s{i}", duration=None, parallel=True) for i in range(6)]
    steering.kube.create(workflow("quick", steps))
    steering.kube.wait_phase("quick")
    rows = by_name(cli(steering, "status", "quick"), 1)
    durations = {name: rows[name][4] for name in (s["name"] for s in steps)}
    assert not [d for d in durations.values() if d.startswith("-")], durations


# --- timeline ----------------------------------------------------------------------------------

def bars(result: Result) -> dict[str, tuple[int, int] | str]:
    """Each row's bar as [first, last) columns, or its placeholder text such as ``(skipped)``."""
    found: dict[str, tuple[int, int] | str] = {}
    for line in result.out.splitlines():
        cells = line.split("│")
        if len(cells) != 5:
            continue
        name, chart = cells[0].strip(), cells[4]
        columns = [i for i, char in enumerate(chart) if char == BAR]
        if columns:
            assert columns == list(range(columns[0], columns[-1] + 1)), line  # one solid bar
            found[name] = (columns[0], columns[-1] + 1)
        else:
            found[name] = chart.strip()
    return found


def overlap(a: tuple[int, int] | str, b: tuple[int, int] | str) -> bool:
    assert isinstance(a, tuple) and isinstance(b, tuple), (a, b)
    return a[0] < b[1] and b[0] < a[1]


def test_timeline_puts_parallel_bars_side_by_side_and_sequential_ones_after_each_other(phases, cli):
    result = cli(phases, "timeline", "done")
    assert result.code == 0, result.err
    chart = bars(result)
    assert list(chart) == ["a", "b", "c", "d", "e"]  # document order
    a, b, c, d, e = (chart[n] for n in "abcde")
    assert overlap(a, b) and overlap(d, e)
    for earlier, later in ((a, c), (b, c), (c, d), (c, e)):
        assert not overlap(earlier, later) and earlier[0] < later[0], chart  # type: ignore[index]
    assert "timeline (total" in result.out and "…" not in result.out  # short names: no bar cut short


def test_a_step_starting_just_after_another_ended_never_shares_its_column():
    """timeline.py: both ends of a bar round the same way (the start used to be truncated)."""
    earlier, later = Row("a", 0, "Succeeded", 0.0, 10.6), Row("b", 1, "Succeeded", 10.65, 20.0)
    first, last = bar_columns(earlier, 60.0, 60), bar_columns(later, 60.0, 60)
    assert first is not None and last is not None and first[1] <= last[0]


def test_timeline_lists_skipped_steps_without_a_bar(phases, cli):
    chart = bars(cli(phases, "timeline", "broken"))
    assert list(chart) == ["x", "y", "z"]
    assert overlap(chart["x"], chart["y"])
    assert chart["z"] == "(skipped)"


def test_timeline_svg_has_one_rect_per_step_that_ran(phases, cli, tmp_path):
    target = tmp_path / "broken.svg"
    result = cli(phases, "timeline", "broken", "--svg", str(target))
    assert result.code == 0 and f"wrote {target}" in result.out
    root = ET.parse(target).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    rects = root.findall(f"{ns}rect")
    assert sorted(r.find(f"{ns}title").text for r in rects) == ["x: Failed", "y: Succeeded"]
    texts = [t.text for t in root.findall(f"{ns}text")]
    assert "z" in texts and "(skipped)" in texts

    done = tmp_path / "done.svg"
    cli(phases, "timeline", "done", "--svg", str(done))
    rects = {r.find(f"{ns}title").text.split(":")[0]: float(r.get("x"))
             for r in ET.parse(done).getroot().findall(f"{ns}rect")}
    assert sorted(rects) == ["a", "b", "c", "d", "e"]
    assert rects["a"] == rects["b"] < rects["c"] < rects["d"] == rects["e"]


# --- logs --------------------------------------------------------------------------------------

def following(scene: Scene, *argv: str, lines: int) -> str:
    """The first ``lines`` lines ``stepflow ARGV`` prints, then it is stopped. kwok's kubelet
    follows a log for good (its runtime answers that every container still runs), where a real
    kubelet ends the stream of a container that has exited; so here ``-f`` never ends."""
    with subprocess.Popen([sys.executable, "-m", "stepflow", *argv, "--kubeconfig", str(scene.kubeconfig)],
                          stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        watchdog = threading.Timer(60, process.kill)  # a test that fails, not one that hangs
        watchdog.start()
        try:
            return "".join(process.stdout.readline() for _ in range(lines))
        finally:
            watchdog.cancel()
            stop_process(process)


def test_logs_prints_the_pod_log(phases, cli):
    result = cli(phases, "logs", "done", "a")
    assert result.code == 0 and result.out == "hello from a\nsecond line\n"
    assert following(phases, "logs", "done", "a", "-f", lines=2) == "hello from a\nsecond line\n"

    [pod] = phases.kube.pods("done-1-c")
    phases.kube.set_pod_log(pod["metadata"]["name"], "custom\nlog of c\n")
    assert cli(phases, "logs", "done", "c").out == "custom\nlog of c\n"


# That the logs of a retried step come from its last attempt is checked where the real Job
# controller's retry is paid for once (about 10 s of back-off): tests/kube/test_e2e_lifecycle.py.


def test_logs_of_a_step_without_a_pod_say_why(phases, cli):
    not_started = cli(phases, "logs", "waiting", "w")
    assert not_started.code == 1 and 'step "w" has not started' in not_started.err
    unknown = cli(phases, "logs", "done", "nope")
    assert unknown.code == 1 and 'workflow "done" has no step "nope"' in unknown.err


# --- graph -------------------------------------------------------------------------------------

def test_graph_mermaid_and_dot_show_every_step_coloured_by_phase(phases, cli):
    mermaid = cli(phases, "graph", "broken", "-o", "mermaid")
    assert mermaid.code == 0 and mermaid.out.startswith("flowchart TD")
    for node, phase in (("s_x", "Failed"), ("s_y", "Succeeded"), ("s_z", "Skipped")):
        assert f"class {node} {phase}" in mermaid.out
        assert f"classDef {phase} fill:#" in mermaid.out
    assert "s_x -->" in mermaid.out or "--> s_z" in mermaid.out

    dot = cli(phases, "graph", "busy", "-o", "dot")
    assert dot.code == 0 and dot.out.startswith('digraph "busy"')
    running, pending = PHASE_FILLS["Running"], PHASE_FILLS["Pending"]
    assert f'"long1" [label="long1", style="rounded,filled", fillcolor="{running}"' in dot.out
    assert f'"after" [label="after", style="rounded,filled", fillcolor="{pending}"' in dot.out
    assert '"long2"' in dot.out and "->" in dot.out


def test_graph_of_an_invalid_workflow_prints_its_errors(phases, cli):
    result = cli(phases, "graph", "invalid")
    assert result.code == 1 and result.out == ""
    assert 'invalid: spec.steps[0].dependsOn[0]' in result.err and "missing" in result.err


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["status", "nope"], ["timeline", "nope"], ["logs", "nope", "a"],
                                  ["suspend", "nope"], ["resume", "nope"], ["rerun", "nope"],
                                  ["graph", "nope"]])
def test_an_unknown_workflow_is_a_clear_error(phases, cli, argv):
    result = cli(phases, *argv)
    assert result.code == 1 and result.out == ""
    assert result.err == 'error: workflow "nope" not found in namespace "default"\n'


def test_an_unknown_workflow_exits_1_from_the_shell(phases):
    done = subprocess.run([sys.executable, "-m", "stepflow", "status", "nope", "-n", "team-b",
                           "--kubeconfig", str(phases.kubeconfig)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == 'error: workflow "nope" not found in namespace "team-b"'


def test_a_bad_kubeconfig_or_context_or_a_dead_server_is_one_line_not_a_traceback(phases, cli, tmp_path):
    missing = cli(phases, "list", kubeconfig=tmp_path / "missing")
    assert missing.code == 1 and missing.err.startswith("error: ") and "Traceback" not in missing.err
    assert "Service host/port" not in missing.err  # not the in-cluster fallback's complaint

    no_context = cli(phases, "status", "done", "--context", "nope")
    assert no_context.code == 1 and "nope" in no_context.err and no_context.err.count("\n") == 1

    dead = tmp_path / "dead"
    dead.write_text(kubeconfig(f"http://127.0.0.1:{free_port()}", tmp_path / "no-ca.crt", {"token": "t"}))
    unreachable = cli(phases, "list", kubeconfig=dead)
    assert unreachable.code == 1 and unreachable.err.startswith("error: cannot reach the API server")


# --- steering ----------------------------------------------------------------------------------

def test_status_watch_returns_when_the_workflow_ends(steering, cli):
    steering.kube.create(workflow("watched", [step("slow", "1500ms"), step("then")]))
    steering.kube.wait_phase("watched", ["Running"])
    result = cli(steering, "status", "watched", "--watch")
    assert result.code == 0
    assert steering.status("watched")["phase"] == "Succeeded"  # returned only once it was over
    assert f"{STEERING}/watched: Succeeded 2/2" in result.out


def test_suspend_and_resume_flip_spec_suspend_and_the_operator_follows(steering, cli):
    kube = steering.kube
    kube.create(workflow("steered", [step("first", hold=True), step("second")]))  # first runs until released
    wait_for(lambda: kube.get("jobs", "steered-1-first"))

    result = cli(steering, "suspend", "steered")
    assert result.code == 0 and "suspended" in result.out
    assert kube.get("workflows", "steered")["spec"]["suspend"] is True
    kube.wait_phase("steered", ["Suspended"])
    kube.release("steered-1-first")
    wait_for(lambda: steering.status("steered")["steps"]["first"]["phase"] == "Succeeded")
    assert steering.status("steered")["phase"] == "Suspended"
    assert kube.get("jobs", "steered-1-second") is None  # nothing new starts

    result = cli(steering, "resume", "steered")
    assert result.code == 0 and "resumed" in result.out
    assert kube.get("workflows", "steered")["spec"]["suspend"] is False
    status = kube.wait_phase("steered")
    assert status["phase"] == "Succeeded" and status["runGeneration"] == 1
    assert kube.get("jobs", "steered-1-second") is not None


def test_rerun_starts_a_new_run_with_new_jobs_and_refuses_while_running(steering, cli):
    kube = steering.kube
    kube.create(workflow("again", [step("only", hold=True)]))  # each run's Job runs until released
    kube.wait_phase("again", ["Running"])
    refused = cli(steering, "rerun", "again")
    assert refused.code == 1 and "is Running" in refused.err
    assert "runToken" not in kube.get("workflows", "again")["spec"]
    kube.release("again-1-only")

    first = kube.wait_phase("again")
    result = cli(steering, "rerun", "again")
    assert result.code == 0 and "new run requested" in result.out
    wait_for(lambda: steering.status("again").get("runGeneration", 0) > first["runGeneration"])
    kube.release(f"again-{steering.status('again')['runGeneration']}-only")
    second = kube.wait_phase("again")
    assert second["phase"] == "Succeeded"
    jobs = sorted(j["metadata"]["name"] for j in kube.jobs("again"))
    assert jobs == [f"again-{first['runGeneration']}-only", f"again-{second['runGeneration']}-only"]


def test_rerun_failed_keeps_successes_and_reruns_failed_and_skipped_steps(steering, cli):
    kube = steering.kube
    kube.create(workflow("flaky", [step("good", parallel=True), step("bad", hold=True, parallel=True),
                                   step("last")]))
    kube.release("flaky-1-bad", exit_code=2)
    first = kube.wait_phase("flaky")
    assert first["phase"] == "Failed" and first["steps"]["last"]["phase"] == "Skipped"

    result = cli(steering, "rerun", "flaky", "--failed")
    assert result.code == 0 and "keeping successful steps" in result.out
    wait_for(lambda: steering.status("flaky").get("runGeneration", 0) > first["runGeneration"])
    kube.release(f"flaky-{steering.status('flaky')['runGeneration']}-bad")  # fixed
    second = kube.wait_phase("flaky")
    assert second["phase"] == "Succeeded" and second["progress"] == "3/3"
    run = second["runGeneration"]
    jobs = {j["metadata"]["name"] for j in kube.jobs("flaky")}
    assert f"flaky-{run}-bad" in jobs and f"flaky-{run}-last" in jobs
    assert f"flaky-{run}-good" not in jobs  # kept, not run again
    assert second["steps"]["good"]["jobName"] == f"flaky-{first['runGeneration']}-good"

    # The kept step ran before this run started; the chart must stay within its columns.
    timeline = cli(steering, "timeline", "flaky")
    widths = {len(line) for line in timeline.out.splitlines() if line.count("│") == 4}
    assert len(widths) == 1, timeline.out
    chart = bars(timeline)
    assert isinstance(chart["bad"], tuple) and isinstance(chart["last"], tuple)
    assert chart["bad"][1] <= chart["last"][0]
    assert chart["good"] == "(kept from an earlier run)"
    assert "…" not in timeline.out  # nothing cut short


def test_status_prints_messages_as_written_never_as_markup():
    # A pod's termination message is anyone's text; "[ERROR]" must not vanish as a style tag.
    workflow_doc = {"metadata": {"namespace": "default", "name": "m"}, "status": {
        "phase": "Failed", "message": 'step "a" failed [/]', "steps": {"a": {
            "group": 0, "index": 0, "phase": "Failed", "reason": "Error", "exitCode": 3,
            "terminationMessage": "[ERROR] disk full"}}}}
    console = Console(width=200, record=True)
    console.print(status_view(workflow_doc, now=0))
    text = console.export_text()
    assert "[ERROR] disk full" in text and 'step "a" failed [/]' in text


def test_on_a_pipe_list_and_status_print_whole_rows_whatever_the_width(phases, cli, monkeypatch):
    """Piped, nothing is cut to a guessed width (it showed `GRO…` and `Succe…`), as kubectl."""
    monkeypatch.setenv("COLUMNS", "40")
    listing = cli(phases, "list")
    assert "…" not in listing.out and by_name(listing, 1)["paused"][2] == "Suspended"
    status = cli(phases, "status", "broken")
    assert "…" not in status.out
    assert status.out.splitlines()[1].split()[:3] == ["GROUP", "STEP", "TYPE"]
    assert "BackoffLimitExceeded" in " ".join(by_name(status, 1)["x"]) and "MESSAGE" in status.out


def test_status_shows_each_steps_type():
    workflow_doc = {"metadata": {"namespace": "default", "name": "t"}, "status": {
        "phase": "Running", "steps": {
            "scan": {"group": 0, "index": 0, "phase": "Running", "type": "security"},
            "plain": {"group": 1, "index": 1, "phase": "Pending"}}}}
    console = Console(width=200, record=True)
    console.print(status_view(workflow_doc, now=0))
    header, *rows = console.export_text().splitlines()[1:]  # after the title line
    assert header.split()[:4] == ["GROUP", "STEP", "TYPE", "PHASE"]
    assert rows[0].split()[1:4] == ["scan", "security", "Running"]
    assert rows[1].split()[1:3] == ["plain", "Pending"]


# --- fan-out (M6), from a status document: no cluster needed --------------------------------------

def fanned_workflow(copies: int, failed: tuple[int, ...] = (),
                    running: tuple[int, ...] = ()) -> dict[str, Any]:
    """A workflow whose matrix step ``deploy`` has ``copies`` copies, as the operator publishes it."""
    steps: dict[str, Any] = {
        "deploy": {"group": 0, "index": 0, "type": "shell", "copies": copies,
                   "phase": "Running" if running else "Failed" if failed else "Succeeded",
                   "message": f"{copies - len(running)} of {copies} copies over, {len(running)} running"}}
    for i in range(copies):
        phase = "Failed" if i in failed else "Running" if i in running else "Succeeded"
        steps[f"deploy-{i}"] = {"group": 0, "index": i, "type": "shell", "phase": phase, "matrixOf": "deploy",
                                "matrix": {"REGION": f"r{i}", "TIER": "a"}, "jobName": f"fan-1-deploy-{i}",
                                **({"reason": "Error", "exitCode": 3} if i in failed else {})}
    steps["after"] = {"group": 1, "index": copies, "phase": "Pending"}
    return {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow",
            "metadata": {"namespace": "default", "name": "fan"},
            "status": {"phase": "Running", "progress": f"0/{copies + 1}", "steps": steps}}


def status_rows(workflow_doc: dict[str, Any], **options: Any) -> list[list[str]]:
    console = Console(width=250, record=True, color_system=None)
    console.print(status_view(workflow_doc, now=0, **options))
    return [line.split("  ") for line in console.export_text().splitlines()[2:]]


def test_status_shows_a_matrix_step_with_its_copies_under_it_each_with_its_values():
    text = "\n".join("  ".join(row) for row in status_rows(fanned_workflow(3, failed=(1,))))
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["1", "deploy", "shell", "Failed", "3"] and "3 copies" in lines[0]
    assert "deploy-0 (REGION=r0 TIER=a)" in lines[1] and "fan-1-deploy-0" in lines[1]
    assert "deploy-1 (REGION=r1 TIER=a)" in lines[2] and "exit code 3" in lines[2]
    assert "deploy-2 (REGION=r2 TIER=a)" in lines[3] and lines[4].split()[:2] == ["2", "after"]
    assert len(lines) == 5  # each copy once, the step once


def test_status_of_256_copies_lists_the_failed_and_running_ones_and_counts_the_rest():
    doc = fanned_workflow(256, failed=(200,), running=(254, 255))
    text = "\n".join("  ".join(row) for row in status_rows(doc))
    lines = text.splitlines()
    assert len(lines) == 1 + 9 + 1 + 1
    for name in ("deploy-200 ", "deploy-254 ", "deploy-255 ", "deploy-0 "):
        assert name in text
    more = next(line for line in lines if "more copies" in line)
    assert "… 247 more copies" in more and "247 Succeeded" in more and "--all-copies" in more
    every = status_rows(doc, every_copy=True)
    assert len(every) == 1 + 256 + 1


def test_status_all_copies_is_an_option_of_status_and_timeline():
    from stepflow.cli import build_parser

    assert build_parser().parse_args(["status", "fan", "--all-copies"]).every_copy is True
    assert build_parser().parse_args(["timeline", "fan"]).every_copy is False


def test_logs_of_a_matrix_step_names_its_copies(monkeypatch, capsys):
    from stepflow.cli import cluster

    monkeypatch.setattr(cluster, "connect", lambda args: (None, "default"))
    monkeypatch.setattr(cluster, "get_workflow", lambda api, namespace, name: fanned_workflow(4))
    with pytest.raises(SystemExit) as exited:
        main(["logs", "fan", "deploy"])
    assert str(exited.value) == ('error: step "deploy" is a matrix step of 4 copies, each with logs of its '
                                 "own: name one, deploy-0 to deploy-3")


def test_graph_draws_the_copies_a_run_made_of_a_list_from_an_output(monkeypatch, capsys):
    from stepflow.cli import cluster

    doc = {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "fan",
                                                                                  "namespace": "default"},
           "spec": {"steps": [{"name": "list", "script": "true", "outputs": ["services"]},
                              {"name": "build", "script": "true", "dependsOn": ["list"],
                               "matrix": {"SVC": {"fromOutput": {"step": "list", "output": "services"}}}}]},
           "status": {"steps": {
               "list": {"group": 0, "index": 0, "phase": "Succeeded"},
               "build": {"group": 1, "index": 1, "phase": "Running", "copies": 2},
               "build-0": {"group": 1, "index": 1, "phase": "Failed", "matrixOf": "build",
                           "matrix": {"SVC": "api"}},
               "build-1": {"group": 1, "index": 2, "phase": "Running", "matrixOf": "build",
                           "matrix": {"SVC": "web"}}}}}
    monkeypatch.setattr(cluster, "connect", lambda args: (None, "default"))
    monkeypatch.setattr(cluster, "get_workflow", lambda api, namespace, name: doc)
    assert main(["graph", "fan"]) == 0
    out = capsys.readouterr().out
    assert 's_build_0["build-0<br/>SVC=api"]' in out and "class s_build_0 Failed" in out
    assert "class s_build_1 Running" in out and "s_list --> s_build_1" in out
    doc["status"]["steps"] = {"list": {"group": 0, "index": 0, "phase": "Running"}}  # not read yet
    assert main(["graph", "fan"]) == 0
    assert 's_build["build \u00d7(list.services)"]' in capsys.readouterr().out
