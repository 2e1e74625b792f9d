"""What each watch event changes in the cache, and which workflows it wakes.

kopf calls the handlers (handlers.py) for every watch event and writes nothing back; they
hand the event here. The work queue guarantees one reconcile per workflow at a time, so a
burst of events for one workflow costs one reconcile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepflow.engine import SUCCEEDED
from stepflow.operator import relist
from stepflow.operator.jobs import WORKFLOW_LABEL, job_outcome
from stepflow.operator.store import Key

if TYPE_CHECKING:
    from stepflow.operator.startup import Operator

Event = dict[str, Any]


def key_of(obj: dict[str, Any], name: str | None = None) -> Key:
    """The object's namespace, and its own name or the workflow's it belongs to."""
    meta = obj["metadata"]
    return meta["namespace"], name or meta["name"]


def on_workflow(operator: Operator, event: Event) -> None:
    obj = event["object"]
    key = key_of(obj)
    if event["type"] is None:
        relist.listed(operator, "workflows", key)
    if event["type"] == "DELETED":
        operator.store.drop_workflow(key, obj["metadata"].get("uid", ""))
        operator.controller.wake(key)  # the reconcile sees it gone and frees its slots
        return
    if operator.store.put_workflow(obj):  # not the echo of our own status write
        operator.controller.wake(key)


def on_job(operator: Operator, event: Event) -> None:
    obj = event["object"]
    workflow = (obj["metadata"].get("labels") or {}).get(WORKFLOW_LABEL)
    if not workflow:
        return
    key = key_of(obj, workflow)
    if event["type"] is None:
        relist.listed(operator, "jobs", key, obj["metadata"]["name"])
    if event["type"] == "DELETED":
        operator.store.drop_job(key, obj["metadata"]["name"], obj["metadata"].get("uid", ""))
    elif not operator.store.put_job(key, obj):
        return  # only pod bookkeeping changed: nothing the engine looks at
    elif job_outcome(obj)[0] == SUCCEEDED and operator.store.pod_succeeded(key, obj):
        return  # its step ended with its pod, which woke the workflow (jobs.succeeded_by_pod)
    operator.controller.wake(key)


def on_pod(operator: Operator, event: Event) -> None:
    """Step pods say what their Jobs do not: an exit code (kept after a deadline deletes the
    pod) and the termination message. Tuned, the watch shows only pods that have ended."""
    obj = event["object"]
    workflow = (obj["metadata"].get("labels") or {}).get(WORKFLOW_LABEL)
    if workflow and operator.store.put_pod(key_of(obj, workflow), obj, deleted=event["type"] == "DELETED"):
        operator.controller.wake(key_of(obj, workflow))


def on_pool(operator: Operator, event: Event) -> None:
    """R2: a pool's limit; the workflows that name it are reconciled when it appears or changes."""
    obj = event["object"]
    limit = (obj.get("spec") or {}).get("limit")
    if event["type"] == "DELETED" or not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        limit = None  # the CRD refuses a bad limit; a pool without one grants nothing
    for key in operator.reconciler.pools.set_limit(key_of(obj), limit):
        operator.controller.wake(key)


def on_step_type(operator: Operator, event: Event, kind: str) -> None:
    """T4: a StepType or ClusterStepType; the workflows waiting for it are reconciled. A run in
    progress never looks here again (T5), so a change wakes nobody else."""
    deleted = event["type"] == "DELETED"
    for key in operator.reconciler.types.put(event["object"], kind, deleted=deleted):
        operator.controller.wake(key)
