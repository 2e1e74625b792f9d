"""Kubernetes Events on Workflows, posted off the reconcile path.

Events are for humans (``kubectl describe``); losing one must never fail or
slow a reconcile, so they go through a bounded queue drained by one thread.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.operator.api import Forbidden, NotLeader
from stepflow.spec import API_GROUP, API_VERSION, KIND
from stepflow.status import rfc3339

log = logging.getLogger(__name__)
COMPONENT = "stepflow-operator"
QUEUE_SIZE = 5000


def build_event(workflow: Mapping[str, Any], kind: str, reason: str, message: str,
                now: float) -> dict[str, Any]:
    meta = workflow["metadata"]
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"),
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": f"{API_GROUP}/operator",
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    def __init__(self, post: Callable[[Mapping[str, Any]], None]):
        self._post = post
        self.dropped = 0
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._drain, name="stepflow-events", daemon=True)
        self._thread.start()

    def record(self, workflow: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait(build_event(workflow, kind, reason, message, time.time()))
        except queue.Full:
            # Said once per thousand, not once per Event: a burst would flood the log too.
            if self.dropped % 1000 == 0:
                log.warning("event queue full (%d waiting); dropped %s event for %s, %d dropped so far",
                            QUEUE_SIZE, reason, workflow["metadata"]["name"], self.dropped + 1)
            self.dropped += 1

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _drain(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._post(event)
            except NotLeader:
                log.debug("dropped event %s: this replica no longer leads", event.get("reason"))
            except Forbidden as exc:
                # A namespace being deleted takes its Workflows along: nobody will read these.
                level = logging.DEBUG if "being terminated" in str(exc) else logging.WARNING
                log.log(level, "could not post event %s: %s", event.get("reason"), exc)
            except Exception as exc:  # an event is never worth crashing for
                log.warning("could not post event %s: %s", event.get("reason"), str(exc)[:300])
