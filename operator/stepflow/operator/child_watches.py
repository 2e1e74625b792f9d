"""The operator's own watches of its Jobs and their ended pods, outside kopf.

A step costs about five watch events (its Job created, its pod counted active, ready, ended,
the Job complete, and the ended pod itself). Through kopf each was a pass through its
per-object workers and handler machinery: about two thirds of the operator's CPU per step
(docs/figures/operator_profile.md). These events only feed the cache and wake workflows, so a
plain list-then-watch (:mod:`stepflow.operator.runtime.listwatch`) hands them to the same
handlers (:mod:`stepflow.operator.watch_events`) as kopf did, listed objects as events of type
None, which is what the re-list bookkeeping (:mod:`stepflow.operator.relist`) expects. kopf
keeps the Workflows, StepPools and step types.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepflow.operator import watch_events
from stepflow.operator.jobs import MANAGED_BY, MANAGED_BY_LABEL
from stepflow.operator.runtime.api import Client, load_config
from stepflow.operator.runtime.listwatch import ListWatch, Object

if TYPE_CHECKING:
    from stepflow.operator.startup import Operator

SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# Pods are watched once they have ended: their exit code and termination message (the step's
# outputs) are what a Job does not tell. A pending or running pod would cost three watch events
# per step; a Job that waits for its pod is looked into on the sweep (pod_sweeper.py).
POD_PHASES_WATCHED = "status.phase!=Pending,status.phase!=Running"
Handler = Callable[["Operator", dict[str, Any]], None]


def namespaces() -> list[str | None]:
    """The namespaces ``stepflow operator -n`` serves (main.py); [None] is every namespace."""
    names = [name for name in os.environ.get("STEPFLOW_NAMESPACES", "").split(",") if name]
    return list(dict.fromkeys(names)) or [None]


def kinds(namespace: str | None) -> list[tuple[str, str, dict[str, str], Handler]]:
    """What is watched in ``namespace``: its path, the server-side filter and the handler."""
    scope = f"/namespaces/{namespace}" if namespace else ""
    return [
        ("jobs", f"/apis/batch/v1{scope}/jobs", {"labelSelector": SELECTOR}, watch_events.on_job),
        ("pods", f"/api/v1{scope}/pods",
         {"labelSelector": SELECTOR, "fieldSelector": POD_PHASES_WATCHED}, watch_events.on_pod),
    ]


def start_child_watches(operator: Operator, api: Any = None,
                        loop: asyncio.AbstractEventLoop | None = None) -> list[ListWatch]:
    """One watch per kind and namespace, on a client of their own: a watch holds its connection
    for minutes, which must not take one from the reconciles' pool."""
    api = api if api is not None else Client(_watch_client())
    loop = loop or asyncio.get_running_loop()
    watches = []
    for namespace in namespaces():
        for kind, path, query, handler in kinds(namespace):
            watch = ListWatch(api, path, loop, query=query, name=f"stepflow-watch-{kind}",
                              listed=_listing(operator, handler), changed=_change(operator, handler))
            watch.start()
            watches.append(watch)
    return watches


def _watch_client() -> Any:
    api_client = load_config()
    api_client.user_agent = "stepflow-operator (watch)"
    return api_client


def _listing(operator: Operator, handler: Handler) -> Callable[[list[Object]], None]:
    def listed(items: list[Object]) -> None:
        for obj in items:
            handler(operator, {"type": None, "object": obj})
    return listed


def _change(operator: Operator, handler: Handler) -> Callable[[str, Object], None]:
    def changed(kind: str, obj: Object) -> None:
        handler(operator, {"type": kind, "object": obj})
    return changed
