from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.cluster import Cluster
from cluster.store import Event
from operator_harness import OperatorProcess, operators
from status_checks import order_violations, status_inconsistencies


@pytest.fixture
def start_operator(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start ``stepflow operator [args]`` against the emulator; stopped at teardown, and a
    traceback in its log fails the test."""
    with operators(cluster, tmp_path) as start:
        yield start


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
