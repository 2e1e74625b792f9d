"""Watch streams: `?watch=true` as JSON lines of ADDED/MODIFIED/DELETED/BOOKMARK/ERROR events.

Each stream keeps a cursor (the last resourceVersion it sent) and replays the store's history
of its resource from it, so a watch resumed with `resourceVersion=N` misses nothing, and one that asks for a
version older than the history gets the `410 Gone` ERROR event that makes kopf re-list.
A change that makes an object match or stop matching the stream's selectors arrives as ADDED or
DELETED, as from a real server. Streams end on `timeoutSeconds`, on `drop()` (fault injection,
optionally by cutting the TCP connection) and when the emulator stops.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web

from .errors import gone
from .resources import ResourceType
from .selectors import Predicate
from .store import Event, Store

Render = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(eq=False)
class Watcher:
    rt: ResourceType
    namespace: str | None
    predicates: list[Predicate]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    abrupt: bool = False

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return all(predicate(obj) for predicate in self.predicates)

    def event_type(self, event: Event) -> str | None:
        """The type this stream reports for the event, or None if it does not see it."""
        if event.storage_key != self.rt.storage_key:
            return None
        now = self.matches(event.obj)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = self.matches(event.old)
        return "MODIFIED" if now and before else "ADDED" if now else "DELETED" if before else None


class WatchHub:
    """All open streams, woken by the store's listener from whichever thread made the change."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.loop_thread = threading.get_ident()
        self.watchers: set[Watcher] = set()
        self.bookmark_interval = 10.0
        store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        for watcher in list(self.watchers):
            if watcher.rt.storage_key == event.storage_key:
                self._wake(watcher)

    def _wake(self, watcher: Watcher) -> None:
        if threading.get_ident() == self.loop_thread:
            watcher.wakeup.set()
        else:
            self.loop.call_soon_threadsafe(watcher.wakeup.set)

    def drop(self, abrupt: bool = False) -> int:
        """End every open stream; clients must reconnect. Returns how many were open."""
        watchers = list(self.watchers)
        for watcher in watchers:
            watcher.closed, watcher.abrupt = True, abrupt
            self._wake(watcher)
        return len(watchers)

    async def serve(self, raw: aiohttp.web.BaseRequest, watcher: Watcher,
                    params: dict[str, str], render: Render | None = None) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        try:
            await _Stream(self, response, watcher, params, render).run()
            if watcher.abrupt and raw.transport is not None:
                raw.transport.close()
            else:
                await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass  # the client went away; nothing to finish
        finally:
            self.watchers.discard(watcher)
        return response


class _Stream:
    def __init__(self, hub: WatchHub, response: aiohttp.web.StreamResponse, watcher: Watcher,
                 params: dict[str, str], render: Render | None) -> None:
        self.hub, self.response, self.watcher = hub, response, watcher
        self.params, self.render = params, render
        self.bookmarks = params.get("allowWatchBookmarks", "").lower() == "true"
        self.cursor = 0

    async def _send(self, kind: str, obj: dict[str, Any] | None = None,
                    event: Event | None = None) -> None:
        if event is not None and self.render is None:
            line = f'{{"type":"{kind}","object":{event.object_json()}}}\n'
        else:
            body = event.obj if event is not None else obj
            assert body is not None
            rendered = self.render(body) if self.render and kind != "ERROR" else body
            line = json.dumps({"type": kind, "object": rendered}) + "\n"
        await self.response.write(line.encode())

    async def _bookmark(self, annotations: dict[str, str] | None = None) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(self.cursor)}
        if annotations:
            meta["annotations"] = annotations
        rt = self.watcher.rt
        await self._send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                      "metadata": meta})

    async def _initial(self) -> None:
        """Send the current state, unless resuming from a resourceVersion."""
        version = self.params.get("resourceVersion", "")
        initial = self.params.get("sendInitialEvents", "").lower() == "true"
        if version in ("", "0") or initial:
            items, self.cursor = self.hub.store.list(self.watcher.rt, self.watcher.namespace)
            self.hub.watchers.add(self.watcher)  # registered = the starting state is taken
            for obj in items:
                if self.watcher.matches(obj):
                    await self._send("ADDED", obj)
            if initial:
                await self._bookmark({"k8s.io/initial-events-end": "true"})
        else:
            self.cursor = int(version) if version.isdigit() else 0
            self.hub.watchers.add(self.watcher)

    async def run(self) -> None:
        self.watcher.wakeup.clear()
        await self._initial()
        loop = asyncio.get_running_loop()
        timeout = self.params.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None
        while not self.watcher.closed:
            if not await self._flush():
                return
            remaining = deadline - loop.time() if deadline is not None else None
            if remaining is not None and remaining <= 0:
                return
            limits = [t for t in (self.hub.bookmark_interval if self.bookmarks else None,
                                  remaining) if t is not None]
            wait = min(limits) if limits else None
            try:
                await asyncio.wait_for(self.watcher.wakeup.wait(), wait)
            except TimeoutError:
                if self.bookmarks:
                    await self._bookmark()
            self.watcher.wakeup.clear()

    async def _flush(self) -> bool:
        events = self.hub.store.events_since(self.watcher.rt.storage_key, self.cursor)
        if events is None:
            error = gone(f"too old resource version: {self.cursor}")
            await self._send("ERROR", error.status())
            return False
        for event in events:
            kind = self.watcher.event_type(event)
            if kind is not None:
                await self._send(kind, event=event)
            self.cursor = event.rv
        return True
