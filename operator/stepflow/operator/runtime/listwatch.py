"""List, then watch from the list's version; on a 410 list again; on errors back off and list again.

One loop for every watch stepflow keeps outside kopf: the operator's Jobs and pods (kopf's
per-event machinery cost about two thirds of the operator's CPU for them, measured in
docs/figures/operator_profile.md) and the web UI's Workflows. The official client is blocking,
so the loop runs in a thread and hands every listing and change to the event loop, where the
callbacks run; the thread only reads (GET list, GET watch).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

WATCH_SECONDS = 240  # the server ends a watch after this; it is resumed from the last version
BACKOFF = (0.5, 1, 2, 5, 10)
Object = dict[str, Any]


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def lines(chunks: Iterable[str]) -> Iterator[str]:
    """Whole lines of a watch's body, which arrives in chunks cut anywhere."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split("\n")
        yield from (line for line in complete if line.strip())


class ListWatch:
    """One kind at one path (a namespace's or the cluster's), kept current through callbacks.

    ``listed(items)`` gets every listing whole (the first and each one after a gap, which shows
    what went meanwhile only by its absence); ``changed(type, obj)`` each ADDED, MODIFIED or
    DELETED; ``lost()`` a broken watch, before the back-off. All three run on ``loop``.
    """

    def __init__(self, api: Any, path: str, loop: asyncio.AbstractEventLoop, *,
                 listed: Callable[[list[Object]], None], changed: Callable[[str, Object], None],
                 lost: Callable[[], None] | None = None, query: Mapping[str, str] | None = None,
                 name: str = "stepflow-watch"):
        self.api, self.path, self.loop, self.query, self.name = api, path, loop, dict(query or {}), name
        self.listed, self.changed, self.lost = listed, changed, lost
        self.stopped = threading.Event()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """The thread ends at the watch's next event or timeout; it is a daemon meanwhile."""
        self.stopped.set()

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
                if self.lost is not None:
                    self._send(self.lost)
                self.stopped.wait(BACKOFF[min(failures, len(BACKOFF) - 1)])
                failures += 1

    def _list(self) -> str:
        listing = self.api.request("GET", self.path, query=self.query or None)
        items = listing.get("items") or []
        kind, api_version = str(listing.get("kind") or ""), listing.get("apiVersion")
        for item in items:  # a list's items leave out what the list says once, as a watch's do not
            if kind.endswith("List"):
                item.setdefault("kind", kind[: -len("List")])
            if api_version:
                item.setdefault("apiVersion", api_version)
        self._send(self.listed, items)
        return listing["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> str:
        query = {**self.query, "watch": "true", "resourceVersion": version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        started = time.monotonic()
        for line in lines(self.api.stream(self.path, query=query, timeout=(10, WATCH_SECONDS + 30))):
            if self.stopped.is_set():
                break
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise RuntimeError(f"watch error: {obj.get('message')}")
            version = obj.get("metadata", {}).get("resourceVersion") or version
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._send(self.changed, kind, obj)
        if time.monotonic() - started < 1:  # closed at once, again and again: do not spin
            self.stopped.wait(1)
        return version
