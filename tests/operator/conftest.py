from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.cluster import Cluster
from cluster.store import Event
from operator_harness import OperatorProcess
from status_checks import order_violations, status_inconsistencies


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
    tracebacks = [t for process in started for t in process.tracebacks()]
    assert not tracebacks, "the operator logged a traceback:\n" + "\n".join(tracebacks)


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


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
