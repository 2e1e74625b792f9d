from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.cluster import Cluster
from cluster.store import Event
from operator_harness import OperatorProcess
from stepflow.operator.jobs import spec_hash
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError
from stepflow.status import parse_time

TERMINAL_STEP = {"Succeeded", "Failed", "Skipped", "Cancelled"}


@pytest.fixture
def start_operator(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start ``stepflow operator [args]`` against the emulator; stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> OperatorProcess:
        process = OperatorProcess(cluster, tmp_path / "operator.log", *args, env=env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


def status_inconsistencies(status: dict) -> list[str]:
    """What a user reading this one status document would find contradictory."""
    steps = status.get("steps") or {}
    if not steps:
        return []
    problems = []
    unfinished = sorted(name for name, step in steps.items() if step.get("phase") not in TERMINAL_STEP)
    if status.get("phase") in ("Succeeded", "Failed") and unfinished:
        problems.append(f"workflow {status['phase']} while steps {unfinished} are not finished")
    done = len(steps) - len(unfinished)
    if status.get("progress") not in (None, f"{done}/{len(steps)}"):
        problems.append(f"progress {status['progress']} but {done} of {len(steps)} steps finished")
    return problems


def order_violations(workflow: dict) -> list[str]:
    """Steps of this run recorded as starting before the run did, or before a prerequisite
    ended (D1, G5)."""
    status = workflow.get("status") or {}
    steps = status.get("steps") or {}
    if not steps or status.get("specHash") != spec_hash(workflow.get("spec") or {}):
        return []  # the status still describes an earlier spec's run
    try:
        plan = compile_workflow(workflow)
    except SpecError:
        return []
    run_start = parse_time(status.get("startedAt")) or 0.0
    this_run = f"{workflow['metadata']['name']}-{status.get('runGeneration')}-"
    problems = []
    for name, entry in steps.items():
        started = parse_time(entry.get("startedAt"))
        if started is None or not entry.get("jobName", "").startswith(this_run):
            continue  # not started, or kept from an earlier run by rerun --failed
        if started < run_start:
            problems.append(f'step "{name}" started at {entry["startedAt"]}, before its run '
                            f'({status.get("startedAt")})')
        for before in plan.prerequisites(name):
            ended = parse_time((steps.get(before) or {}).get("finishedAt"))
            if ended is None or ended > started:
                problems.append(f'step "{name}" started at {entry["startedAt"]} before "{before}" '
                                f'ended ({(steps.get(before) or {}).get("finishedAt")})')
    return problems


@pytest.fixture(autouse=True)
def every_status_write_is_consistent(request: pytest.FixtureRequest) -> Iterator[None]:
    """Checks every Workflow status the operator ever published, not just the one a test reads
    at the end: a watcher (kubectl wait, Argo CD, `stepflow timeline`) may see any of them."""
    if "cluster" not in request.fixturenames:
        yield
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    problems: list[str] = []

    def check(event: Event) -> None:
        if event.storage_key == "workflows.stepflow.dev" and event.type == "MODIFIED":
            name = event.obj["metadata"]["name"]
            found = status_inconsistencies(event.obj.get("status") or {}) + order_violations(event.obj)
            problems.extend(f"{name} rv {event.rv}: {p}" for p in found)

    cluster.store.subscribe(check)
    yield
    assert not problems, "inconsistent status published:\n" + "\n".join(problems)
