"""A scripted API for one reconcile at a time: it records what the reconcile asks for, and tests
preset Jobs that already exist. The stages' tests (observe, apply, record, queues) share it."""

from __future__ import annotations

import copy
from typing import Any

from operator_harness import workflow
from stepflow.engine import SlotQueue
from stepflow.operator.jobs import build_job
from stepflow.operator.pools import Pools
from stepflow.operator.reconcile import Reconciler
from stepflow.operator.runtime.api import Conflict, Invalid
from stepflow.operator.runtime.events import EventRecorder
from stepflow.operator.store import Store
from stepflow.plan import compile_workflow
from stepflow.status import rfc3339

NOW = 1_800_000_000.0
KEY = ("default", "wf")


class ScriptedApi:
    """Records what the reconcile asks for; tests preset Jobs that already exist."""

    def __init__(self, workflow_body: dict[str, Any]):
        self.workflow = workflow_body
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.refuse: str | None = None  # a 422 message for every create
        self.events: list[dict[str, Any]] = []  # what the Job controller posted
        self.event_reads = 0
        self.pod_lists = 0
        self.bump_generation_on_patch = False

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        if self.refuse:
            raise Invalid(self.refuse)
        if name in self.jobs:
            raise Conflict(name)
        job = {**copy.deepcopy(manifest), "status": {}}
        job["metadata"].update(resourceVersion="1", creationTimestamp=rfc3339(NOW), uid=f"uid-{name}")
        self.jobs[name] = job
        self.created.append(name)
        return job

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.jobs[name])

    def job_events(self, namespace: str, job: str, reason: str) -> list[dict[str, Any]]:
        self.event_reads += 1
        return [e for e in self.events if e["reason"] == reason and e["involvedObject"]["name"] == job]

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        self.pod_lists += 1
        return [{"metadata": {"creationTimestamp": rfc3339(NOW)}, "status": {"containerStatuses": [
            {"name": "step", "state": {"terminated": {"exitCode": 3, "message": "disk full"}}}]}}]

    def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        status = self.workflow.setdefault("status", {})
        _merge(status, patch)
        meta = self.workflow["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if self.bump_generation_on_patch:  # a user's edit committed just before our patch
            meta["generation"] += 1
            self.workflow["spec"]["suspend"] = True
        return copy.deepcopy(self.workflow)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def setup(steps: list[dict[str, Any]], uid: str = "uid-new", slots: SlotQueue | None = None,
          pools: Pools | None = None, **spec: Any) -> tuple[Reconciler, ScriptedApi, Store]:
    body = workflow("wf", steps)
    body["spec"].update(spec)
    body["metadata"].update(uid=uid, generation=1, resourceVersion="1")
    api = ScriptedApi(body)
    store = Store(clock=lambda: NOW)
    store.put_workflow(copy.deepcopy(body))
    reconciler = Reconciler(api, store, EventRecorder(lambda event: None), slots or SlotQueue(None),
                            wake=lambda key: None, clock=lambda: NOW, pools=pools)
    return reconciler, api, store


def existing_job(body: dict[str, Any], step: str, *, owner_uid: str, started: float,
                 outcome: str | None = None) -> dict[str, Any]:
    """A Job as an earlier operator (or an earlier Workflow of this name) left it."""
    plan = compile_workflow(body)
    job = build_job(plan, plan.step_by_name[step], namespace="default", owner_uid=owner_uid,
                    generation=1)
    job["metadata"].update(resourceVersion="5", creationTimestamp=rfc3339(started)[:19] + "Z")
    job["status"] = {"startTime": rfc3339(started)[:19] + "Z"}  # whole seconds, as Kubernetes
    if outcome:
        job["status"]["conditions"] = [{"type": outcome, "status": "True"}]
        job["status"]["completionTime"] = rfc3339(started + 1)[:19] + "Z"
        job["status"]["failed" if outcome == "Failed" else "succeeded"] = 1
    return job


def step_pod(job: dict[str, Any], status: dict[str, Any], deleting: bool = False,
              uid: str | None = None) -> dict[str, Any]:
    meta = {"name": job["metadata"]["name"] + "-x", "creationTimestamp": rfc3339(NOW),
            "labels": {"batch.kubernetes.io/job-name": job["metadata"]["name"]},
            "ownerReferences": [{"kind": "Job", "name": job["metadata"]["name"],
                                 "uid": uid if uid is not None else job["metadata"].get("uid", "")}]}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "status": status}


def job_of(api: ScriptedApi, step: str) -> dict[str, Any]:
    """The Job the reconcile created for ``step``."""
    return next(j for j in api.jobs.values() if j["metadata"]["labels"].get("stepflow.dev/step") == step)


def finish(api: ScriptedApi, store: Store, step: str) -> None:
    """The Job of ``step`` succeeded, as its watch event reports it."""
    job = job_of(api, step)
    job["metadata"]["resourceVersion"] = "9"
    job["status"] = {"startTime": rfc3339(NOW - 5)[:19] + "Z", "succeeded": 1,
                     "completionTime": rfc3339(NOW - 1)[:19] + "Z",
                     "conditions": [{"type": "Complete", "status": "True"}]}
    store.put_job(KEY, copy.deepcopy(job))
    store.put_workflow(copy.deepcopy(api.workflow))


def restarted_operator(api: ScriptedApi) -> Reconciler:
    """A new operator, whose watch and caches show only what is there now."""
    fresh = Store(clock=lambda: NOW)
    fresh.put_workflow(copy.deepcopy(api.workflow))
    for job in api.jobs.values():
        fresh.put_job(KEY, copy.deepcopy(job))
    return Reconciler(api, fresh, EventRecorder(lambda event: None), SlotQueue(None),
                      wake=lambda key: None, clock=lambda: NOW)

