"""The list-then-watch loop and the hub. Mirror: ``operator/stepflow/ui/watch.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from stepflow.cli.ui import read_only
from stepflow.operator.api import Api
from stepflow.operator.runtime.api import NotLeader
from stepflow.ui.watch import Changes, Hub, WorkflowWatch


def obj(name: str, version: str, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
        "status": {"phase": phase},
    }


class FakeApi:
    """Answers lists and watches from scripts; ends the loop when they run out."""

    def __init__(self, lists: list[dict[str, Any]], watches: list[Any], watch: WorkflowWatch | None = None):
        self.lists, self.watches, self.calls = lists, watches, []
        self.watch = watch

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append((method, path))
        return self.lists.pop(0)

    def stream(self, path: str, query: dict[str, str], timeout: Any) -> Iterator[str]:
        self.calls.append(("WATCH", query["resourceVersion"]))
        if not self.watches:
            self.watch.stopped.set()
            return iter(())
        script = self.watches.pop(0)
        if isinstance(script, Exception):
            raise script
        return iter("".join(json.dumps(event) + "\n" for event in script))


class Recorder(Changes):
    """Every change the hub publishes, none coalesced."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[str, Any]] = []

    def put(self, kind: str, key: Any) -> None:
        self.changes.append((kind, key))


def run_watch(lists: list[dict[str, Any]], watches: list[Any]) -> tuple[Hub, FakeApi, list[tuple[str, Any]]]:
    async def main() -> tuple[Hub, FakeApi, list[tuple[str, Any]]]:
        hub = Hub()
        seen = hub.subscribe(Recorder())
        api = FakeApi(lists, watches)
        watch = WorkflowWatch(api, "ns", hub, asyncio.get_running_loop())
        api.watch = watch
        watch.stopped.wait = lambda seconds: False  # no back-off sleeps in the test
        await asyncio.to_thread(watch.run)
        await asyncio.sleep(0.05)  # the thread's last hand-offs
        return hub, api, seen.changes

    return asyncio.run(main())


def listing(version: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "items": list(items)}


def test_a_list_then_a_watch_from_its_version_keeps_the_copy_current():
    hub, api, changes = run_watch(
        [listing("10", obj("a", "9"))],
        [
            [
                {"type": "ADDED", "object": obj("b", "11")},
                {"type": "MODIFIED", "object": obj("a", "12", "Failed")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                {"type": "DELETED", "object": obj("b", "16")},
            ]
        ],
    )
    assert list(hub.workflows) == [("ns", "a")] and hub.workflows[("ns", "a")]["status"]["phase"] == "Failed"
    assert api.calls[:2] == [("GET", "/apis/stepflow.dev/v1alpha1/namespaces/ns/workflows"), ("WATCH", "10")]
    assert api.calls[2] == ("WATCH", "16")  # the next watch resumes after the last event
    assert changes == [
        ("MODIFIED", ("ns", "a")),
        ("CONNECTION", ("", "connection")),
        ("MODIFIED", ("ns", "b")),
        ("MODIFIED", ("ns", "a")),
        ("DELETED", ("ns", "b")),
    ]


def test_an_expired_version_lists_again_and_a_vanished_workflow_is_deleted():
    hub, _, changes = run_watch(
        [listing("10", obj("a", "9"), obj("b", "9")), listing("30", obj("a", "9"))],
        [[{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]],
    )
    assert list(hub.workflows) == [("ns", "a")]
    assert ("DELETED", ("ns", "b")) in changes
    assert changes.count(("MODIFIED", ("ns", "a"))) == 1  # unchanged on the second list: not sent again


def test_a_failed_watch_is_reported_and_the_loop_lists_again():
    hub, _, changes = run_watch([listing("10"), listing("20", obj("a", "19"))], [ConnectionError("reset")])
    # Connected by the first list, lost with the watch, back with the second list.
    assert [c for c in changes if c[0] == "CONNECTION"] == [("CONNECTION", ("", "connection"))] * 3
    assert hub.connected and list(hub.workflows) == [("ns", "a")]


def test_a_page_that_falls_behind_gets_each_workflows_latest_change_once():
    async def main() -> list[tuple[str, Any] | None]:
        changes = Changes()
        for n in range(10_000):
            changes.put("MODIFIED", ("ns", f"w{n % 3}"))
        changes.put("DELETED", ("ns", "w0"))
        return [await changes.get(0.01) for _ in range(4)]

    assert asyncio.run(main()) == [
        ("MODIFIED", ("ns", "w1")),
        ("MODIFIED", ("ns", "w2")),
        ("DELETED", ("ns", "w0")),
        None,
    ]


def test_the_uis_api_handle_refuses_every_write_before_sending_it():
    api = read_only(Api(api_client=None))  # no client: a call that got through would crash instead
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(NotLeader):
            api.request(method, "/api/v1/namespaces/x/pods")
