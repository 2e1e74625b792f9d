"""A live copy of the Workflows the identity may list, from the API's list-then-watch.

The loop is the runtime's (:mod:`stepflow.operator.runtime.listwatch`); here ``Hub`` keeps the
copy on the event loop and fans changes out to the open pages. The ``Api`` the watch is given
refuses every write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepflow.operator.runtime.listwatch import ListWatch
from stepflow.spec import API_GROUP, API_VERSION
from stepflow.ui.model import Key, key_of


def workflows_path(namespace: str | None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{API_GROUP}/{API_VERSION}{scope}/workflows"


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


class WorkflowWatch(ListWatch):
    """The Workflows of ``namespace`` (or every namespace), kept in ``hub``."""

    def __init__(self, api: Any, namespace: str | None, hub: Hub, loop: asyncio.AbstractEventLoop):
        super().__init__(api, workflows_path(namespace), loop, listed=hub.replace, changed=hub.apply,
                         lost=hub.lost, name="stepflow-ui-watch")
