"""A live copy of the Workflows the identity may list, from the API's list-then-watch.

The official client is blocking, so the loop runs in a thread and hands each change to the
event loop, where ``Hub`` keeps the copy and fans changes out to the open pages. The thread
only reads (GET list, GET watch); the ``Api`` it is given refuses every write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from stepflow.spec import API_GROUP, API_VERSION
from stepflow.ui.model import Key, key_of

log = logging.getLogger("stepflow.ui")

WATCH_SECONDS = 240  # the server ends a watch after this; it is resumed from the last version
BACKOFF = (0.5, 1, 2, 5, 10)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def workflows_path(namespace: str | None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{API_GROUP}/{API_VERSION}{scope}/workflows"


def lines(chunks: Iterable[str]) -> Iterator[str]:
    """Whole lines of a watch's body, which arrives in chunks cut anywhere."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split("\n")
        yield from (line for line in complete if line.strip())


CONNECTION: Key = ("", "connection")  # the watch broke, or came back
CLOSE: Key = ("", "close")  # the server is stopping


class Changes:
    """A page's pending changes, at most one per workflow.

    A page that falls behind (a slow link, a busy browser) gets each workflow's latest state
    once, not every state in between, and its backlog never grows past the number of workflows.
    """

    def __init__(self) -> None:
        self._pending: dict[Key, str] = {}
        self._ready = asyncio.Event()

    def put(self, kind: str, key: Key) -> None:
        self._pending.pop(key, None)  # to the back: changes leave in the order they last came
        self._pending[key] = kind
        self._ready.set()

    async def get(self, timeout: float) -> tuple[str, Key] | None:
        """The oldest pending change, or None after ``timeout`` seconds without one."""
        if not self._pending:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        key = next(iter(self._pending))
        return self._pending.pop(key), key


class Hub:
    """The copy of every Workflow, and the changes of the pages that follow them (event loop only)."""

    def __init__(self) -> None:
        self.workflows: dict[Key, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.connected = False
        self._subscribers: set[Changes] = set()

    def subscribe(self, changes: Changes | None = None) -> Changes:
        changes = changes or Changes()
        self._subscribers.add(changes)
        return changes

    def unsubscribe(self, changes: Changes) -> None:
        self._subscribers.discard(changes)

    def _publish(self, kind: str, key: Key) -> None:
        for changes in self._subscribers:
            changes.put(kind, key)

    def replace(self, items: list[dict[str, Any]]) -> None:
        """A fresh list: what is gone was deleted while the watch was down."""
        fresh = {key_of(obj): obj for obj in items}
        for key in set(self.workflows) - set(fresh):
            del self.workflows[key]
            self._publish("DELETED", key)
        for key, obj in fresh.items():
            known = self.workflows.get(key)
            if known is None or known["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self.workflows[key] = obj
                self._publish("MODIFIED", key)
        if not self.connected:  # back after a break: the pages can drop their banner
            self.connected = True
            self._publish("CONNECTION", CONNECTION)
        self.synced.set()

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            if self.workflows.pop(key, None) is not None:
                self._publish("DELETED", key)
            return
        self.workflows[key] = obj
        self._publish("MODIFIED", key)

    def close(self) -> None:
        self._publish("CLOSE", CLOSE)

    def lost(self) -> None:
        self.connected = False
        self._publish("CONNECTION", CONNECTION)


class WorkflowWatch:
    """List, then watch from the list's version; on a 410 list again; on errors back off."""

    def __init__(self, api: Any, namespace: str | None, hub: Hub, loop: asyncio.AbstractEventLoop):
        self.api, self.path, self.hub, self.loop = api, workflows_path(namespace), hub, loop
        self.stopped = threading.Event()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="stepflow-ui-watch", daemon=True)
        thread.start()
        return thread

    def _send(self, method: Callable[..., None], *args: Any) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(method, *args)

    def run(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            try:
                version = self._list()
                failures = 0
                while not self.stopped.is_set():
                    version = self._watch(version)
            except Gone:
                continue
            except Exception as exc:  # any API failure: report, back off, list again
                log.warning("watching %s failed (%s); listing again", self.path, str(exc)[:200])
                self._send(self.hub.lost)
                self.stopped.wait(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1

    def _list(self) -> str:
        listing = self.api.request("GET", self.path)
        self._send(self.hub.replace, listing.get("items") or [])
        return listing["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> str:
        query = {
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        started = time.monotonic()
        for line in lines(self.api.stream(self.path, query=query, timeout=(10, WATCH_SECONDS + 30))):
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise RuntimeError(f"watch error: {obj.get('message')}")
            version = obj.get("metadata", {}).get("resourceVersion") or version
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._send(self.hub.apply, kind, obj)
        if time.monotonic() - started < 1:  # closed at once, again and again: do not spin
            self.stopped.wait(1)
        return version
