"""The operator's own watches of Jobs and pods (mirror: operator/stepflow/operator/child_watches.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stepflow.operator import child_watches
from watch_fakes import operator

KEY = ("default", "wf")


def job(version: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": "wf-1-a", "uid": "j1", "resourceVersion": version,
                         "labels": {"stepflow.dev/workflow": "wf"}}, "status": status}


@pytest.mark.parametrize(("value", "expected"), [("", [None]), ("a", ["a"]), ("a,b,a", ["a", "b"])])
def test_the_namespaces_watched_are_those_served(monkeypatch, value, expected):
    monkeypatch.setenv("STEPFLOW_NAMESPACES", value)
    assert child_watches.namespaces() == expected


def test_only_our_jobs_and_only_ended_pods_come_over_the_wire():
    """Filtered by the API server, not after the fact: a pending or running pod would be three
    events a step telling nothing a Job does not (the sweeper looks into a Job that waits)."""
    (jobs, job_path, job_query, _), (pods, pod_path, pod_query, _) = child_watches.kinds("team-a")
    assert (jobs, job_path) == ("jobs", "/apis/batch/v1/namespaces/team-a/jobs")
    assert (pods, pod_path) == ("pods", "/api/v1/namespaces/team-a/pods")
    assert job_query == {"labelSelector": "app.kubernetes.io/managed-by=stepflow"}
    assert pod_query == {"labelSelector": "app.kubernetes.io/managed-by=stepflow",
                         "fieldSelector": "status.phase!=Pending,status.phase!=Running"}
    assert [path for _, path, _, _ in child_watches.kinds(None)] == ["/apis/batch/v1/jobs", "/api/v1/pods"]


class OneShotApi:
    """Lists one Job, then watches one change to it, for Jobs; nothing for pods."""

    def __init__(self) -> None:
        self.watches: list[Any] = []

    def request(self, method: str, path: str, query: Any = None) -> dict[str, Any]:
        items = [job("2")] if path.endswith("/jobs") else []
        return {"kind": "List", "metadata": {"resourceVersion": "3"}, "items": items}

    def stream(self, path: str, query: Any, timeout: Any) -> Iterator[str]:
        if path.endswith("/jobs"):
            yield json.dumps({"type": "MODIFIED", "object": job("4", succeeded=1)}) + "\n"
        while not self.watches:  # set once start_child_watches has returned
            time.sleep(0.01)
        for watch in self.watches:
            if watch.path == path:
                watch.stop()


def test_a_listing_and_changes_reach_the_same_handlers_kopf_fed(monkeypatch):
    monkeypatch.setenv("STEPFLOW_NAMESPACES", "default")
    ops, api = operator(), OneShotApi()

    async def main() -> None:
        api.watches = child_watches.start_child_watches(ops, api=api)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(ops.controller.woken) >= 2:
                break
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert ops.controller.kinds_listed == ["jobs"]  # listed as kopf did: events of type None
    assert KEY in ops.controller.woken
    assert ops.store.jobs(KEY)["wf-1-a"]["metadata"]["resourceVersion"] == "4"
