"""The list-then-watch loop (mirror: operator/stepflow/operator/runtime/listwatch.py).

The Workflows the web UI follows are tested through it in tests/ui/test_watch.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from stepflow.operator.runtime.listwatch import ListWatch, lines


def test_watch_lines_are_whole_however_the_body_is_cut():
    body = '{"a": 1}\n{"b": 2}\n\n{"c": 3}\n'
    for cut in range(1, len(body)):
        assert list(lines([body[:cut], body[cut:]])) == ['{"a": 1}', '{"b": 2}', '{"c": 3}']


class ScriptedApi:
    def __init__(self, listing: dict[str, Any], events: list[dict[str, Any]]):
        self.listing, self.events, self.queries = listing, events, []
        self.watch: ListWatch | None = None

    def request(self, method: str, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
        self.queries.append(("LIST", path, query))
        return json.loads(json.dumps(self.listing))

    def stream(self, path: str, query: dict[str, str], timeout: Any) -> Iterator[str]:
        self.queries.append(("WATCH", path, query))
        yield from (json.dumps(e) + "\n" for e in self.events)
        assert self.watch is not None
        self.watch.stopped.set()  # one watch, then the loop ends


def test_listed_items_get_the_kind_the_list_names_and_the_filter_goes_to_the_server():
    api = ScriptedApi({"kind": "JobList", "apiVersion": "batch/v1", "metadata": {"resourceVersion": "7"},
                       "items": [{"metadata": {"name": "a", "resourceVersion": "5"}}]},
                      [{"type": "ADDED",
                        "object": {"kind": "Job", "metadata": {"name": "b", "resourceVersion": "8"}}}])
    seen: list[Any] = []

    async def main() -> None:
        watch = ListWatch(api, "/apis/batch/v1/jobs", asyncio.get_running_loop(),
                          query={"labelSelector": "x=y"},
                          listed=lambda items: seen.append(("listed", items)),
                          changed=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
        api.watch = watch
        await asyncio.to_thread(watch.run)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert seen[0] == ("listed", [{"kind": "Job", "apiVersion": "batch/v1",
                                   "metadata": {"name": "a", "resourceVersion": "5"}}])
    assert seen[1:] == [("ADDED", "b")]
    assert api.queries[0] == ("LIST", "/apis/batch/v1/jobs", {"labelSelector": "x=y"})
    assert api.queries[1][2]["labelSelector"] == "x=y" and api.queries[1][2]["resourceVersion"] == "7"
