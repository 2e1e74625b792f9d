"""Kubernetes Events, posted off the reconcile path.

Events are for humans (``kubectl describe``); losing one must never fail or
slow a reconcile, so they go through a bounded queue drained by one thread.

Each Event is an API write, and stepflow's DESIGN.md allows three writes per
step in all (the Job, the status, the Events). So routine news about an
object's items (for stepflow, a step that started or succeeded) is gathered
per object and reason for up to ``LINGER`` seconds and posted as one Event
naming every item ("steps "a", "b" and "c" succeeded"). On the real control
plane a step takes about a second at best (the Job controller batches pod
updates for one), so five seconds gather a few steps of a chain; a step longer
than that gets Events of its own. Anything else about the same object (a
failure) first posts what is gathered, so ``kubectl describe`` keeps the order
in which things happened. An object's closing Event (a workflow's end) tells
what is gathered in its own message when that fits, rather than after three
more writes: a run that ends within the linger costs one Event in all
('all 5 steps succeeded: steps "a", ... and "e" started and succeeded').

What the Events are about and who posts them is the caller's: an
:class:`EventSource`.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stepflow.operator.runtime.api import Forbidden, NotLeader

log = logging.getLogger(__name__)
QUEUE_SIZE = 5000
LINGER = 5.0  # seconds a routine step Event waits for others of its workflow
BATCH_MESSAGE_LIMIT = 900  # characters of step names in one gathered Event; Events hold 1,024


@dataclass(frozen=True)
class EventSource:
    """Who posts the Events, and what they are about: the runtime knows no kind of its own.

    Without ``api_version`` and ``kind``, an Event is about the object as given, by its own
    type fields. ``item`` and ``items`` name what gathered Events list.
    """

    component: str = "controller"  # source.component
    controller: str = "controller"  # reportingComponent
    api_version: str | None = None
    kind: str | None = None
    item: str = "item"
    items: str = "items"


GENERIC = EventSource()


def event_time(ts: float) -> str:
    """RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_event(source: EventSource, obj: Mapping[str, Any], kind: str, reason: str, message: str,
                now: float) -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = event_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": source.api_version or obj.get("apiVersion"), "kind": source.kind or obj.get("kind"),
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": source.component},
        "reportingComponent": source.controller,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def gathered_message(source: EventSource, labels: list[str], verb: str) -> str:
    """'step "a" succeeded', 'steps "a" and "b" succeeded', 'steps "a", "b" and "c" succeeded'."""
    if len(labels) == 1:
        return f"{source.item} {labels[0]} {verb}"
    return f"{source.items} {', '.join(labels[:-1])} and {labels[-1]} {verb}"


ObjectKey = tuple[str, str, str]  # namespace, name, uid


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return meta["namespace"], meta["name"], meta.get("uid") or ""


@dataclass
class _Gathering:
    """Routine outcomes of one object's items, for one reason, not posted yet."""

    obj: Mapping[str, Any]
    reason: str
    verb: str
    first_at: float  # wall clock, for the Event's firstTimestamp
    due: float  # monotonic
    last_at: float = 0.0  # wall clock, for its lastTimestamp
    labels: list[str] = field(default_factory=list)

    def size(self) -> int:
        return sum(len(label) + 2 for label in self.labels)


class EventRecorder:
    """Events about objects, posted by one thread through ``post`` (the API client's)."""

    def __init__(self, post: Callable[[Mapping[str, Any]], None], linger: float = LINGER,
                 source: EventSource = GENERIC, name: str = "events"):
        self._post = post
        self.linger = linger
        self.source = source
        self.dropped = 0
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(QUEUE_SIZE)
        # Owned by the drain thread alone: what waits to be posted as one Event.
        self._gathering: dict[tuple[ObjectKey, str], _Gathering] = {}
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def record(self, obj: Mapping[str, Any], kind: str, reason: str, message: str, *,
               closing: bool = False) -> None:
        """An Event of its own, posted as soon as the queue gets to it. A ``closing`` one (the
        object's last news) tells what is gathered for the object in its message, if it fits."""
        event = build_event(self.source, obj, kind, reason, message, time.time())
        self._put(("event", obj, event, closing), reason, obj)

    def record_routine(self, obj: Mapping[str, Any], reason: str, label: str, verb: str) -> None:
        """A Normal outcome of one of the object's items, gathered with others of the same object
        and reason."""
        self._put(("routine", obj, reason, label, verb, time.time()), reason, obj)

    def _put(self, item: tuple[Any, ...], reason: str, obj: Mapping[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # Said once per thousand, not once per Event: a burst would flood the log too.
            if self.dropped % 1000 == 0:
                log.warning("event queue full (%d waiting); dropped %s event for %s, %d dropped so far",
                            QUEUE_SIZE, reason, obj["metadata"]["name"], self.dropped + 1)
            self.dropped += 1

    def close(self) -> None:
        """Post what is gathered and stop (the operator's shutdown)."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _drain(self) -> None:
        while True:
            due = min((g.due for g in self._gathering.values()), default=None)
            try:
                item = self._queue.get(timeout=None if due is None else max(due - time.monotonic(), 0.0))
            except queue.Empty:
                self._flush(lambda gathering: gathering.due <= time.monotonic())
                continue
            if item is None:
                self._flush(lambda gathering: True)
                return
            if item[0] == "event":
                _, obj, event, closing = item
                key = _object_key(obj)
                if closing:
                    self._absorb(key, event)
                self._flush(lambda gathering, key=key: _object_key(gathering.obj) == key)
                self._send(event)
            else:
                self._gather(*item[1:])

    def _gather(self, obj: Mapping[str, Any], reason: str, label: str, verb: str, at: float) -> None:
        key = (_object_key(obj), reason)
        gathering = self._gathering.get(key)
        if gathering is not None and (gathering.verb != verb
                                      or gathering.size() + len(label) > BATCH_MESSAGE_LIMIT):
            self._send(self._event_of(self._gathering.pop(key)))
            gathering = None
        if gathering is None:
            gathering = _Gathering(obj, reason, verb, at, time.monotonic() + self.linger)
            self._gathering[key] = gathering
        gathering.obj = obj  # the newest body: the same object, a fresher resourceVersion
        gathering.labels.append(label)
        gathering.last_at = at

    def _absorb(self, key: ObjectKey, event: dict[str, Any]) -> None:
        """Tell the object's gathered outcomes in ``event``'s message, if they fit in it; items
        gathered under several verbs are named once ('started and succeeded')."""
        mine = [k for k, g in self._gathering.items() if _object_key(g.obj) == key]
        verbs: dict[tuple[str, ...], list[str]] = {}
        for gathering in (self._gathering[k] for k in mine):
            verbs.setdefault(tuple(gathering.labels), []).append(gathering.verb)
        told = "; ".join(gathered_message(self.source, list(labels), " and ".join(said))
                         for labels, said in verbs.items())
        message = f"{event['message']}: {told}"
        if mine and len(message) <= 1024:
            event["message"] = message
            for gathered in mine:
                del self._gathering[gathered]

    def _flush(self, chosen: Callable[[_Gathering], bool]) -> None:
        for key in [k for k, g in self._gathering.items() if chosen(g)]:
            self._send(self._event_of(self._gathering.pop(key)))

    def _event_of(self, gathering: _Gathering) -> dict[str, Any]:
        message = gathered_message(self.source, gathering.labels, gathering.verb)
        event = build_event(self.source, gathering.obj, "Normal", gathering.reason, message,
                            gathering.first_at)
        # describe shows "(x3 over 2s)": three outcomes, the first and the last.
        event["lastTimestamp"] = event_time(gathering.last_at)
        event["count"] = len(gathering.labels)
        return event

    def _send(self, event: Mapping[str, Any]) -> None:
        try:
            self._post(event)
        except NotLeader:
            log.debug("dropped event %s: this replica no longer leads", event.get("reason"))
        except Forbidden as exc:
            # A namespace being deleted takes its objects along: nobody will read these.
            level = logging.DEBUG if "being terminated" in str(exc) else logging.WARNING
            log.log(level, "could not post event %s: %s", event.get("reason"), exc)
        except Exception as exc:  # an event is never worth crashing for
            log.warning("could not post event %s: %s", event.get("reason"), str(exc)[:300])
