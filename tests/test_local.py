"""The local executor with real processes (``sh -c`` and short sleeps).

Concurrency is read from the status report's timestamps, as a user would read
it; timing checks compare intervals and ratios, never tight wall-clock limits.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from builders import plan_of, step, within
from simulate import max_overlap
from stepflow.local import LocalRun, unsupported_fields
from stepflow.status import parse_time


def run_local(tmp_path: Path, steps, *, interrupt_after: float | None = None,
              max_concurrency: int | None = None, **spec) -> tuple[LocalRun, dict]:
    plan = plan_of(steps, **spec)
    run = LocalRun(plan, log_dir=tmp_path / "logs", max_concurrency=max_concurrency)

    async def main():
        if interrupt_after is not None:
            asyncio.get_running_loop().call_later(interrupt_after, run.interrupt)
        return await run.run()

    asyncio.run(main())
    report = json.loads(json.dumps(run.status()))  # exactly what --report writes
    return run, report


def interval(report: dict, name: str) -> tuple[float, float]:
    entry = report["steps"][name]
    return parse_time(entry["startedAt"]), parse_time(entry["finishedAt"])


def phases(report: dict) -> dict[str, str]:
    return {n: e["phase"] for n, e in report["steps"].items()}


# --- concurrency ---------------------------------------------------------------------------------

def test_parallel_steps_really_overlap(tmp_path):
    steps = [step(n, parallel=True, script="sleep 0.5") for n in ("a", "b", "c")]
    _, report = run_local(tmp_path, steps)
    assert report["phase"] == "Succeeded"
    spans = [interval(report, n) for n in "abc"]
    assert max_overlap(spans) == 3
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # one instant where all three run
    wall = parse_time(report["finishedAt"]) - parse_time(report["startedAt"])
    assert wall < 0.7 * sum(e - s for s, e in spans)  # ideal is 1/3


def test_groups_never_overlap(tmp_path):
    steps = [step("a", parallel=True, script="sleep 0.3"), step("b", parallel=True, script="sleep 0.4"),
             step("c", script="sleep 0.3"), step("d", parallel=True, script="sleep 0.3"),
             step("e", parallel=True, script="sleep 0.3")]
    _, report = run_local(tmp_path, steps)
    a, b, c, d, e = (interval(report, n) for n in "abcde")
    assert c[0] >= max(a[1], b[1])
    assert min(d[0], e[0]) >= c[1]
    assert max_overlap([d, e]) == 2


def test_max_concurrency_is_never_exceeded(tmp_path):
    steps = [step(f"s{i}", parallel=True, script="sleep 0.3") for i in range(6)]
    _, report = run_local(tmp_path, steps, maxConcurrency=2)
    spans = [interval(report, f"s{i}") for i in range(6)]
    assert max_overlap(spans) == 2
    starts = sorted(range(6), key=lambda i: spans[i][0])
    assert starts == list(range(6))  # waiting steps got slots in document order


def test_max_concurrency_override(tmp_path):
    steps = [step(f"s{i}", parallel=True, script="sleep 0.3") for i in range(4)]
    _, report = run_local(tmp_path, steps, max_concurrency=1)
    assert max_overlap([interval(report, f"s{i}") for i in range(4)]) == 1


def test_max_resources_budgets_real_processes(tmp_path):
    """R1 locally: the processes are not limited, but which steps run at once follows the budget."""
    steps = [step(f"s{i}", parallel=True, script="sleep 0.3", resources={"requests": {"cpu": c}})
             for i, c in enumerate(["1500m", "500m", "1", "1"])]
    run, report = run_local(tmp_path, steps, maxResources={"cpu": "2"})
    assert report["phase"] == "Succeeded"
    spans = [interval(report, f"s{i}") for i in range(4)]
    assert max_overlap(spans[:2]) == 2 and max_overlap(spans[2:]) == 2  # 2 CPUs each pair
    assert min(spans[2][0], spans[3][0]) >= max(spans[0][1], spans[1][1]) - 0.05
    assert any("maxResources" in note for note in unsupported_fields(run.plan))


def test_depends_on_starts_without_waiting_for_the_group(tmp_path):
    steps = [step("slow", script="sleep 0.8"), step("quick", depends_on=[], script="sleep 0.1")]
    _, report = run_local(tmp_path, steps)
    slow, quick = interval(report, "slow"), interval(report, "quick")
    assert quick[1] < slow[1]


# --- outcomes ------------------------------------------------------------------------------------

def test_failure_records_exit_code_and_output_and_skips_the_rest(tmp_path):
    steps = [step("a", script="echo about to fail; echo 'disk full' >&2; exit 3"), step("b")]
    _, report = run_local(tmp_path, steps)
    a, b = report["steps"]["a"], report["steps"]["b"]
    assert (a["phase"], a["exitCode"], a["reason"]) == ("Failed", 3, "Error")
    assert "disk full" in a["terminationMessage"]
    assert (b["phase"], b["reason"]) == ("Skipped", "PrerequisiteFailed") and '"a"' in b["message"]
    assert report["phase"] == "Failed" and '"a"' in report["message"]


def test_continue_on_error_step_fails_but_the_workflow_succeeds(tmp_path):
    steps = [step("a", script="exit 1", continueOnError=True), step("b")]
    _, report = run_local(tmp_path, steps)
    assert phases(report) == {"a": "Failed", "b": "Succeeded"}
    assert report["phase"] == "Succeeded"


def test_a_command_that_cannot_start_fails_the_step(tmp_path):
    steps = [{"name": "ghost", "command": ["/nonexistent/stepflow-test-binary"]}]
    _, report = run_local(tmp_path, steps)
    ghost = report["steps"]["ghost"]
    assert (ghost["phase"], ghost["exitCode"]) == ("Failed", 127)
    assert "cannot start" in ghost["message"]


def test_a_nul_byte_in_a_command_fails_the_step_instead_of_the_run(tmp_path):
    _, report = run_local(tmp_path, [{"name": "a", "command": ["echo", "a\0b"]}, step("b")])
    a = report["steps"]["a"]
    assert (a["phase"], a["exitCode"]) == ("Failed", 127) and "null byte" in a["message"]
    assert report["phase"] == "Failed"


def test_a_step_killed_by_a_signal_reports_128_plus_the_signal_like_a_container(tmp_path):
    # "$$$$": a script is a container argument, where Kubernetes turns $$ into $ (as locally).
    _, report = run_local(tmp_path, [step("a", script="kill -9 $$$$")])
    a = report["steps"]["a"]
    assert (a["phase"], a["exitCode"]) == ("Failed", 137) and "signal 9" in a["message"]


def test_fail_fast_cancels_running_processes(tmp_path):
    marker = tmp_path / "slow-finished"
    steps = [step("a", parallel=True, script="sleep 0.2; exit 1"),
             step("b", parallel=True, script=f"sleep 0.8; touch {marker}"),
             step("c")]
    _, report = run_local(tmp_path, steps, failurePolicy="FailFast")
    b = report["steps"]["b"]
    assert (b["phase"], b["reason"]) == ("Cancelled", "FailFast") and '"a"' in b["message"]
    start, end = interval(report, "b")
    assert end - start < 0.8  # stopped before its sleep was over
    assert report["steps"]["c"]["phase"] == "Skipped"
    time.sleep(max(0.0, start + 1.1 - time.time()))
    assert not marker.exists(), "the cancelled step's process kept running"


def test_stop_after_group_lets_running_steps_finish(tmp_path):
    steps = [step("a", parallel=True, script="sleep 0.1; exit 1"),
             step("b", parallel=True, script="sleep 0.4"), step("c")]
    _, report = run_local(tmp_path, steps)
    assert phases(report) == {"a": "Failed", "b": "Succeeded", "c": "Skipped"}


# --- timeouts and retries ----------------------------------------------------------------------

def test_step_timeout_kills_the_process(tmp_path):
    marker = tmp_path / "outlived"
    steps = [step("slow", timeoutSeconds=1, script=f"sleep 1.6; touch {marker}")]
    _, report = run_local(tmp_path, steps)
    slow = report["steps"]["slow"]
    assert (slow["phase"], slow["reason"]) == ("Failed", "DeadlineExceeded")
    start, end = interval(report, "slow")
    assert end - start < 1.6
    time.sleep(max(0.0, start + 1.9 - time.time()))
    assert not marker.exists()


def test_a_child_that_ignores_sigterm_does_not_outlive_its_step(tmp_path):
    # The shell exits on SIGTERM; its background child ignores it and would live on.
    pid_file = tmp_path / "child.pid"
    steps = [step("stubborn", timeoutSeconds=1,
                  script=f"sh -c \"trap '' TERM; sleep 30\" & echo $! > {pid_file}; wait")]
    _, report = run_local(tmp_path, steps)
    assert report["steps"]["stubborn"]["reason"] == "DeadlineExceeded"
    child = int(pid_file.read_text())
    assert _ended(child), "the child kept running"


def test_background_children_of_a_succeeded_step_do_not_outlive_it(tmp_path):
    # A container's exit ends every process in it; a local step's exit must end its group too.
    pid_file = tmp_path / "child.pid"
    steps = [step("bg", script=f"sleep 101 & echo $! > {pid_file}; echo started")]
    _, report = run_local(tmp_path, steps)
    assert report["steps"]["bg"]["phase"] == "Succeeded"
    child = int(pid_file.read_text())
    assert _ended(child), "sleep 101 kept running"


def test_an_env_entry_without_a_value_is_set_empty_as_in_a_container(tmp_path):
    out = tmp_path / "out"
    steps = [step("e", env=[{"name": "EMPTY"}], script=f'echo "${{EMPTY-unset}}" > {out}')]
    _, report = run_local(tmp_path, steps)
    assert report["phase"] == "Succeeded" and out.read_text() == "\n"


def _ended(pid: int, within: float = 2.0) -> bool:
    """Whether the process is gone (or a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_step_timeout_bounds_all_attempts_like_a_jobs_active_deadline(tmp_path):
    """timeoutSeconds maps to activeDeadlineSeconds, which ends the Job, retries included."""
    steps = [step("slow", timeoutSeconds=1, retries=3, script="sleep 5")]
    _, report = run_local(tmp_path, steps)
    slow = report["steps"]["slow"]
    assert (slow["phase"], slow["reason"]) == ("Failed", "DeadlineExceeded")
    start, end = interval(report, "slow")
    assert end - start < 2.5  # 4 attempts of 1 s each would take 4 s
    assert slow["attempts"] == 1


def test_retries_rerun_a_failed_step_and_count_attempts(tmp_path):
    counter = tmp_path / "count"
    script = f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; ' \
             f'echo "try $n"; [ "$n" -ge 3 ]'
    run, report = run_local(tmp_path, [step("flaky", retries=4, script=script)])
    assert report["steps"]["flaky"]["phase"] == "Succeeded"
    assert report["steps"]["flaky"]["attempts"] == 3
    log = run.log_path("flaky").read_text()
    assert "try 1" in log and "--- attempt 3 ---" in log and "try 3" in log


def test_retries_exhausted(tmp_path):
    _, report = run_local(tmp_path, [step("bad", retries=2, script="exit 4")])
    bad = report["steps"]["bad"]
    assert (bad["phase"], bad["attempts"], bad["exitCode"]) == ("Failed", 3, 4)


# --- environment and logs ----------------------------------------------------------------------

def test_environment_from_defaults_and_step(tmp_path):
    out = tmp_path / "env.txt"
    steps = [step("show", env=[{"name": "B", "value": "step-b"}, {"name": "A", "value": "step-a"}],
                  script=f'echo "$A|$B|$C|$STEPFLOW_WORKFLOW|$STEPFLOW_STEP" > {out}')]
    defaults = {"env": [{"name": "A", "value": "default-a"}, {"name": "C", "value": "default-c"}]}
    run_local(tmp_path, steps, defaults=defaults, name="env-check")
    assert out.read_text().strip() == "step-a|step-b|default-c|env-check|show"


def test_each_step_writes_its_own_log(tmp_path):
    steps = [step("one", parallel=True, script="echo out-one; echo err-one >&2"),
             step("two", parallel=True, script="echo out-two")]
    run, _ = run_local(tmp_path, steps)
    one, two = run.log_path("one").read_text(), run.log_path("two").read_text()
    assert "out-one" in one and "err-one" in one and "out-two" not in one
    assert "out-two" in two and "one" not in two
    assert run.log_path("one").parent == tmp_path / "logs"


def test_a_second_run_does_not_mix_its_log_with_the_first(tmp_path):
    """Found by this suite: logs were appended across runs, and a failed step's termination
    message could quote the previous run's output."""
    run_local(tmp_path, [step("job", script="echo first-run")])
    run, report = run_local(tmp_path, [step("job", script="exit 2")])
    assert "first-run" not in run.log_path("job").read_text()
    assert "first-run" not in report["steps"]["job"].get("terminationMessage", "")


# --- interrupt -----------------------------------------------------------------------------------

def test_interrupt_cancels_running_steps_and_skips_the_rest(tmp_path):
    marker = tmp_path / "after-interrupt"
    steps = [step("a", parallel=True, script=f"sleep 0.8; touch {marker}"),
             step("b", parallel=True, script="sleep 0.8"), step("c")]
    _, report = run_local(tmp_path, steps, interrupt_after=0.3)
    assert phases(report) == {"a": "Cancelled", "b": "Cancelled", "c": "Skipped"}
    assert report["steps"]["a"]["reason"] == "Interrupted"
    assert (report["phase"], report["reason"]) == ("Failed", "Interrupted")
    start, _ = interval(report, "a")
    time.sleep(max(0.0, start + 1.1 - time.time()))
    assert not marker.exists()


@pytest.mark.parametrize("policy", ["StopAfterGroup", "Continue"])
def test_report_lists_every_step_with_ms_timestamps(tmp_path, policy):
    steps = [step("a", parallel=True, script="exit 1"), step("b", parallel=True), step("c")]
    _, report = run_local(tmp_path, steps, failurePolicy=policy)
    assert set(report["steps"]) == {"a", "b", "c"}
    assert report["groups"] == [["a", "b"], ["c"]]
    for key in ("startedAt", "finishedAt"):
        assert report[key].endswith("Z") and len(report[key].split(".")[1]) == 4  # "123Z"


@pytest.mark.parametrize("text, expected", [
    ("v=$(APP_VERSION)", "v=1.4.2"),
    ("$$(APP_VERSION)", "$(APP_VERSION)"),  # $$ escapes
    ("$(MISSING) stays", "$(MISSING) stays"),  # unresolvable: left as written
    ("cost $5 and $(", "cost $5 and $("),
    ("$(APP_VERSION)$(APP_VERSION)", "1.4.21.4.2"),
])
def test_references_expand_by_kubernetes_rules(text, expected):
    from stepflow.env_values import expand_references

    assert expand_references(text, {"APP_VERSION": "1.4.2"}) == expected


def test_command_args_and_env_values_expand_references_like_a_cluster(tmp_path):
    out = tmp_path / "out"
    env = [{"name": "APP_VERSION", "value": "1.4.2"}, {"name": "TAG", "value": "v$(APP_VERSION)"}]
    steps = [step("e", env=env, script=None, command=["sh", "-c", f'echo "$1 $2" > {out}', "sh"],
                  args=["v=$(APP_VERSION)", "$(TAG)"])]
    _, report = run_local(tmp_path, steps)
    assert report["phase"] == "Succeeded"
    assert out.read_text() == "v=1.4.2 v1.4.2\n"


def test_a_missing_working_dir_is_named_as_the_cause_not_the_command(tmp_path):
    steps = [step("w", workingDir=str(tmp_path / "nowhere"), script="true")]
    _, report = run_local(tmp_path, steps)
    w = report["steps"]["w"]
    assert w["phase"] == "Failed" and "workingDir" in w["message"] and "nowhere" in w["message"]
    assert "cannot start" not in w["message"]


# --- outputs, conditions and finally steps with real processes (O1-O3, W1, X1) ---------------

def test_real_processes_pass_outputs_through_the_environment(tmp_path):
    steps = [
        step("build", outputs=["tag", "notes"],
             script='echo tag=v1 >> "$STEPFLOW_OUTPUTS"; '
                    'printf \'notes<<END\\na;b\\n$(x)\\nEND\\n\' >> "$STEPFLOW_OUTPUTS"'),
        step("deploy", script='test "$TAG" = v1 && printf %s "$NOTES" > "$OUT"',
             env=[{"name": "TAG", "valueFrom": {"stepOutput": {"step": "build", "output": "tag"}}},
                  {"name": "NOTES", "valueFrom": {"stepOutput": {"step": "build", "output": "notes"}}},
                  {"name": "OUT", "value": str(tmp_path / "notes.txt")}]),
    ]
    _, report = run_local(tmp_path, steps)
    assert report["phase"] == "Succeeded", report["message"]
    assert report["steps"]["build"]["outputs"] == {"tag": "v1", "notes": "a;b\n$(x)"}
    # The value arrives as is: "$(x)" was neither expanded nor run by a shell.
    assert (tmp_path / "notes.txt").read_text() == "a;b\n$(x)"


def test_a_real_process_that_forgets_an_output_fails_missing_output(tmp_path):
    _, report = run_local(tmp_path, [step("build", outputs=["tag"], script="echo hello"), step("next")])
    assert report["steps"]["build"]["reason"] == "MissingOutput"
    assert report["steps"]["next"]["phase"] == "Skipped"


def test_a_condition_and_a_finally_step_with_real_processes(tmp_path):
    from builders import workflow
    from stepflow.plan import compile_workflow

    doc = workflow(step("test", outputs=["changed"], script='echo changed=false >> "$STEPFLOW_OUTPUTS"'),
                   step("deploy", when="steps.test.outputs.changed == 'true'", script="exit 3"),
                   step("broken", script="exit 1"))
    doc["spec"]["finally"] = [step("notify", when="workflow.failed", script=f"touch {tmp_path / 'told'}")]
    run = LocalRun(compile_workflow(doc), log_dir=tmp_path / "logs")
    decision = asyncio.run(run.run())
    report = run.status()
    assert report["steps"]["deploy"]["reason"] == "ConditionFalse"
    assert report["steps"]["notify"]["phase"] == "Succeeded" and (tmp_path / "told").exists()
    assert decision.phase == "Failed" and '"broken"' in decision.message


def test_an_interrupt_stops_the_main_steps_and_the_finally_steps_still_run(tmp_path):
    from builders import workflow
    from stepflow.plan import compile_workflow

    doc = workflow(step("slow", script="sleep 30"))
    doc["spec"]["finally"] = [step("cleanup", script=f"touch {tmp_path / 'cleaned'}")]
    run = LocalRun(compile_workflow(doc), log_dir=tmp_path / "logs")

    async def main():
        asyncio.get_running_loop().call_later(0.5, run.interrupt)
        return await run.run()

    decision = asyncio.run(main())
    assert run.states["slow"].reason == "Interrupted"
    assert (tmp_path / "cleaned").exists() and decision.phase == "Failed"


def test_a_condition_the_library_cannot_finish_fails_its_step_and_finally_runs(tmp_path, monkeypatch):
    """W2 with real processes: an evaluation that raises (the library's iteration budget, here
    let through validation on purpose) fails its step ConditionError; the run and its finally
    steps go on, and the report is written."""
    from builders import workflow
    from stepflow import conditions
    from stepflow.plan import compile_workflow

    monkeypatch.setattr(conditions, "_check_cost", lambda checked, placeholders: None, raising=False)
    ten = "[1,2,3,4,5,6,7,8,9,10]"
    when = f"{ten}.all(x, {ten}.all(y, {ten}.all(z, {ten}.all(w, x + y + z + w > 0))))"
    doc = workflow(step("a"), step("b", when=when, script=f"touch {tmp_path / 'ran'}"))
    doc["spec"]["finally"] = [step("notify", when="workflow.failed", script=f"touch {tmp_path / 'told'}")]
    run = LocalRun(compile_workflow(doc), log_dir=tmp_path / "logs")
    decision = asyncio.run(run.run())
    report = json.loads(json.dumps(run.status()))
    assert (report["steps"]["b"]["phase"], report["steps"]["b"]["reason"]) == ("Failed", "ConditionError")
    assert not (tmp_path / "ran").exists() and (tmp_path / "told").exists()
    assert decision.phase == "Failed" and '"b"' in decision.message


@pytest.mark.parametrize("ending", ["timeout", "interrupt"])
def test_a_finally_step_on_failure_fires_after_a_timeout_or_an_interruption(tmp_path, ending):
    """X1 and W2: in a finally step, workflow.failed is the main steps' outcome, so "notify on
    failure" fires when the run timed out or was stopped, though no step failed for real."""
    from builders import workflow
    from stepflow.plan import compile_workflow

    doc = workflow(step("slow", script="sleep 30"), **({"timeoutSeconds": 1} if ending == "timeout" else {}))
    doc["spec"]["finally"] = [
        step("alert", parallel=True, when="workflow.failed", script=f"touch {tmp_path / 'alerted'}"),
        step("celebrate", parallel=True, when="!workflow.failed", script=f"touch {tmp_path / 'celebrated'}")]
    run = LocalRun(compile_workflow(doc), log_dir=tmp_path / "logs")

    async def main():
        if ending == "interrupt":
            asyncio.get_running_loop().call_later(0.5, run.interrupt)
        return await run.run()

    decision = asyncio.run(main())
    assert decision.phase == "Failed"
    assert (tmp_path / "alerted").exists() and not (tmp_path / "celebrated").exists()
    assert run.states["celebrate"].reason == "ConditionFalse"


# --- issue 28, item 6: no file a step controls can block the runner ----------------------------

@pytest.mark.parametrize("replace_with, kind", [
    ('rm -f "$STEPFLOW_OUTPUTS"; mkfifo "$STEPFLOW_OUTPUTS"', "a FIFO"),
    ('ln -sf /dev/zero "$STEPFLOW_OUTPUTS"', "a character device"),
    ('rm -f "$STEPFLOW_OUTPUTS"; mkdir "$STEPFLOW_OUTPUTS"', "a directory"),
])
def test_an_outputs_file_replaced_by_a_fifo_or_a_device_fails_the_step_and_the_run_goes_on(
        tmp_path, replace_with, kind):
    steps = [step("build", outputs=["tag"], script=replace_with), step("next")]
    doc_finally = [step("notify", script=f"touch {tmp_path / 'notified'}")]
    with within(20):
        _, report = run_local(tmp_path, steps, **{"finally": doc_finally})
    build = report["steps"]["build"]
    assert (build["phase"], build["reason"]) == ("Failed", "MissingOutput")
    assert kind in build["message"] and "$STEPFLOW_OUTPUTS" in build["message"], build["message"]
    assert report["steps"]["next"]["phase"] == "Skipped"
    assert (tmp_path / "notified").exists()


def test_a_step_without_outputs_may_leave_a_fifo_there(tmp_path):
    fifo = step("a", script='rm "$STEPFLOW_OUTPUTS"; mkfifo "$STEPFLOW_OUTPUTS"')
    with within(20):
        _, report = run_local(tmp_path, [fifo])
    assert report["phase"] == "Succeeded"


def test_a_failed_step_that_left_a_fifo_for_its_log_fails_with_its_exit_code(tmp_path):
    log = tmp_path / "logs" / "a.log"
    with within(20):
        _, report = run_local(tmp_path, [step("a", script=f'echo x; rm "{log}"; mkfifo "{log}"; exit 3')])
    a = report["steps"]["a"]
    assert (a["phase"], a["exitCode"]) == ("Failed", 3)


def test_a_retry_starts_with_fresh_files_whatever_the_last_attempt_left(tmp_path):
    """Attempt 1 leaves FIFOs at its log and outputs paths and fails; attempt 2 writes normally."""
    log, marker = tmp_path / "logs" / "a.log", tmp_path / "tried"
    script = (f'if [ ! -e "{marker}" ]; then touch "{marker}"; rm -f "{log}" "$STEPFLOW_OUTPUTS"; '
              f'mkfifo "{log}" "$STEPFLOW_OUTPUTS"; exit 1; fi; '
              'echo second; echo tag=v2 >> "$STEPFLOW_OUTPUTS"')
    with within(20):
        _, report = run_local(tmp_path, [step("a", retries=1, outputs=["tag"], script=script)])
    a = report["steps"]["a"]
    assert (a["phase"], a["attempts"], a["outputs"]) == ("Succeeded", 2, {"tag": "v2"})
    assert "second" in log.read_text()


# --- issue 28, item 7: what a real process writes, counted and checked as written ---------------

def reads_output(var: str, producer: str, output: str) -> dict:
    return {"name": var, "valueFrom": {"stepOutput": {"step": producer, "output": output}}}


def test_a_real_process_writing_bytes_that_are_not_utf8_is_counted_by_what_it_wrote(tmp_path):
    script = ("printf 'blob=' >> \"$STEPFLOW_OUTPUTS\"; "
              "head -c 1536 /dev/zero | tr '\\0' '\\377' >> \"$STEPFLOW_OUTPUTS\"")
    steps = [step("build", outputs=["blob"], script=script),
             step("use", env=[reads_output("B", "build", "blob")])]
    _, report = run_local(tmp_path, steps)
    assert report["phase"] == "Succeeded", report["message"]
    assert report["steps"]["build"]["outputs"] == {"blob": "\ufffd" * 1536}


def test_a_nul_in_an_output_fails_the_producer_and_the_consumer_never_starts(tmp_path):
    steps = [step("build", outputs=["tag"], script="printf 'tag=v1\\0evil\\n' >> \"$STEPFLOW_OUTPUTS\""),
             step("use", env=[reads_output("T", "build", "tag")])]
    _, report = run_local(tmp_path, steps)
    build, use = report["steps"]["build"], report["steps"]["use"]
    assert (build["phase"], build["reason"]) == ("Failed", "InvalidOutput")
    assert 'output "tag"' in build["message"] and "NUL" in build["message"]
    assert (use["phase"], use.get("exitCode")) == ("Skipped", None)  # not a made-up 127 of its own


# --- fan-out (M2, M4, M5) ------------------------------------------------------------------------

def test_a_local_fan_out_gives_each_copy_its_values_literally_and_a_consumer_the_array(tmp_path):
    write_list = """printf 'items=["api","$(HOME) `id`"]\\n' >> "$STEPFLOW_OUTPUTS" """
    build = 'printf "image=%s/%s/%s\\n" "$svc" "$arch" "$STEPFLOW_MATRIX_INDEX" >> "$STEPFLOW_OUTPUTS"'
    images = {"name": "IMAGES", "valueFrom": {"stepOutput": {"step": "build", "output": "image"}}}
    _, report = run_local(tmp_path, [
        step("list", script=write_list, outputs=["items"]),
        step("build", matrix={"svc": {"fromOutput": {"step": "list", "output": "items"}}, "arch": ["x86"]},
             script=build, outputs=["image"]),
        step("report", env=[images], script='printf "%s" "$IMAGES" > ' + str(tmp_path / "images.json")),
    ])
    assert report["phase"] == "Succeeded" and report["progress"] == "4/4"
    assert report["steps"]["build-1"]["outputs"] == {"image": "$(HOME) `id`/x86/1"}
    assert report["steps"]["build"]["copies"] == 2 and report["steps"]["build"]["phase"] == "Succeeded"
    assert report["groups"][1] == ["build-0", "build-1"]
    assert json.loads((tmp_path / "images.json").read_text()) == ["api/x86/0", "$(HOME) `id`/x86/1"]
