"""The UI's HTTP surface, on a hub fed by the test. Mirror: ``operator/stepflow/ui/server.py``.

The browser tests on the real control plane (tests/kube/test_e2e_ui.py) cover the pages; these
cover what a page cannot show: the stream's contents, errors, and that nothing but GET exists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from stepflow.ui.model import summary
from stepflow.ui.server import HUB, make_app
from stepflow.ui.watch import Hub
from ui.test_model import LISTED, STATUS, fanned_out, s, workflow

Client = Callable[[TestClient], Awaitable[None]]


def run(
    test: Client,
    objects: list[dict[str, Any]] | None = None,
    logs: Callable[[str, str, int], str] = lambda ns, job, lines: f"{ns} {job} {lines}\n",
) -> Hub:
    """Serve a hub holding ``objects`` and hand a client to ``test``."""

    async def main() -> Hub:
        hub = Hub()
        hub.replace(objects if objects is not None else [workflow([s("a"), s("b"), s("c")], STATUS)])
        async with TestClient(TestServer(make_app(hub, logs, "team"))) as client:
            await test(client)
        return hub

    return asyncio.run(main())


async def events(response: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Parse a server-sent event stream as it arrives."""
    event = None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


def test_the_list_and_a_workflow_as_json():
    async def test(client: TestClient) -> None:
        listing = await (await client.get("/api/workflows")).json()
        assert [(w["namespace"], w["name"], w["phase"]) for w in listing["workflows"]] == [
            ("team", "w", "Running")
        ]
        page = await (await client.get("/api/workflows/team/w")).json()
        assert page["steps"]["a"]["phase"] == "Succeeded" and page["graph"]["nodes"]
        missing = await client.get("/api/workflows/team/nope")
        assert missing.status == 404 and "team/nope" in (await missing.json())["error"]
        meta = await (await client.get("/api/meta")).json()
        assert meta["scope"] == "team"
        palette = await client.get("/palette.css")
        assert palette.content_type == "text/css" and "--phase-Failed: #" in await palette.text()

    run(test)


def test_logs_come_from_the_steps_job_with_a_bounded_line_count():
    async def test(client: TestClient) -> None:
        assert await (await client.get("/api/workflows/team/w/steps/a/logs")).text() == "team w-1-a 200\n"
        assert (
            await (await client.get("/api/workflows/team/w/steps/a/logs?lines=99999")).text()
            == "team w-1-a 5000\n"
        )
        assert (await client.get("/api/workflows/team/w/steps/a/logs?lines=x")).status == 400
        assert "has not started" in await (await client.get("/api/workflows/team/w/steps/c/logs")).text()
        assert (await client.get("/api/workflows/team/w/steps/zzz/logs")).status == 404

    run(test)


def test_a_log_that_cannot_be_read_is_a_message_not_a_traceback(caplog):
    def refused(namespace: str, job: str, lines: int) -> str:
        raise PermissionError("pods/log is forbidden")

    async def test(client: TestClient) -> None:
        response = await client.get("/api/workflows/team/w/steps/a/logs")
        assert response.status == 502
        assert await response.text() == "(cannot read the log: pods/log is forbidden)"

    run(test, logs=refused)
    assert "w-1-a" in caplog.text and "Traceback" not in caplog.text


def test_nothing_but_get_is_served():
    async def test(client: TestClient) -> None:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for path in ("/api/workflows", "/api/workflows/team/w", "/api/events"):
                assert (await client.request(method, path)).status == 405, (method, path)

    run(test)


def test_pages_may_load_nothing_from_elsewhere_and_static_files_stay_in_their_folder():
    async def test(client: TestClient) -> None:
        index = await client.get("/")
        assert index.status == 200 and "app.js" in await index.text()
        policy = index.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        for script in ("app.js", "dom.js", "fanout.js", "layout.js"):  # modules: served as JavaScript
            answer = await client.get(f"/static/{script}")
            assert answer.status == 200 and "javascript" in answer.headers["Content-Type"], script
        assert (await client.get("/static/vendor/elk-worker.min.js")).status == 200
        for sneaky in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py"):
            assert (await client.get(sneaky)).status in (403, 404), sneaky

    run(test)


def test_the_workflow_stream_sends_the_page_then_only_the_steps_that_changed():
    async def test(client: TestClient) -> None:
        response = await client.get("/api/events?workflow=team/w")
        stream = events(response)
        kind, page = await anext(stream)
        assert kind == "page" and set(page["steps"]) == {"a", "b", "c"} and "now" in page
        obj = workflow(
            [s("a"), s("b"), s("c")],
            {
                **STATUS,
                "steps": {
                    **STATUS["steps"],
                    "b": {
                        **STATUS["steps"]["b"],
                        "phase": "Failed",
                        "exitCode": 3,
                        "finishedAt": "2026-12-03T10:00:09Z",
                    },
                },
            },
        )
        client.app[HUB].apply("MODIFIED", obj)
        kind, update = await anext(stream)
        assert kind == "steps" and list(update["steps"]) == ["b"]
        assert update["steps"]["b"]["exitCode"] == 3 and update["summary"]["name"] == "w"
        response.close()

    run(test)


def test_a_step_that_fans_out_mid_run_redraws_the_page_with_its_box_then_its_copies_update_it():
    """M4, M6: the copies of a list read from an output exist only once the run has read it; the
    page gets the graph again then, with the box, and afterwards only the steps that changed."""
    listing = {"list": {"index": 0, "group": 0, "phase": "Running"}}
    waiting = workflow(LISTED, {"phase": "Running", "steps": listing})

    async def test(client: TestClient) -> None:
        response = await client.get("/api/events?workflow=team/w")
        stream = events(response)
        kind, page = await anext(stream)
        build = next(n for n in page["graph"]["nodes"] if n["id"] == "build")
        assert kind == "page" and build["fanOut"] == "fans out over output services of list"
        hub = client.app[HUB]
        hub.apply("MODIFIED", workflow(LISTED, fanned_out(["api", "web"], ["Pending", "Pending"])))
        kind, page = await anext(stream)
        build = next(n for n in page["graph"]["nodes"] if n["id"] == "build")
        assert kind == "page" and [c["id"] for c in build["copies"]] == ["build-0", "build-1"]
        hub.apply("MODIFIED", workflow(LISTED, fanned_out(["api", "web"], ["Running", "Pending"])))
        kind, update = await anext(stream)
        assert kind == "steps" and set(update["steps"]) == {"build-0", "build"}
        assert update["steps"]["build"]["copiesLabel"] == "2 copies: 1 running 1 pending"
        response.close()

    run(test, [waiting])


def test_the_list_stream_starts_with_a_snapshot_and_follows_deletions():
    async def test(client: TestClient) -> None:
        hub = client.app[HUB]
        response = await client.get("/api/events")
        stream = events(response)
        kind, snapshot = await anext(stream)
        assert kind == "snapshot" and [w["name"] for w in snapshot["workflows"]] == ["w"]
        other = workflow([s("x")])
        other["metadata"]["name"] = "other"
        hub.apply("ADDED", other)
        assert await anext(stream) == ("workflow", summary(other))
        hub.apply("DELETED", other)
        assert await anext(stream) == ("deleted", {"namespace": "team", "name": "other"})
        response.close()

    run(test)


def test_stopping_the_server_ends_open_streams_at_once():
    async def main() -> float:
        hub = Hub()
        hub.replace([])
        server = TestServer(make_app(hub, lambda *a: "", ""))
        client = TestClient(server)
        await client.start_server()
        response = await client.get("/api/events")
        await anext(events(response))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.close()
        return loop.time() - started

    assert asyncio.run(main()) < 5
