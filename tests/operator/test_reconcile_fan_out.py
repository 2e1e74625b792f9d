"""Fan-out in the operator, one reconcile at a time (M4, M6): a list read from an output is
written to status before any copy's Job exists, and a new operator reads the same copies back."""

from __future__ import annotations

import copy
import json
from typing import Any

from scripted_api import KEY, NOW, ScriptedApi, finish, job_of, restarted_operator, setup
from stepflow.operator.reconcile import Reconciler
from stepflow.operator.store import Store
from stepflow.status import rfc3339

STEPS = [{"name": "list", "script": "true", "outputs": ["items"]},
         {"name": "build", "script": 'build "$svc"', "outputs": ["image"],
          "matrix": {"svc": {"fromOutput": {"step": "list", "output": "items"}}}},
         {"name": "report", "script": "true",
          "env": [{"name": "IMAGES", "valueFrom": {"stepOutput": {"step": "build", "output": "image"}}}]}]


def succeed(api: OutputsApi, store: Store, step: str, message: str = "") -> None:
    """The Job of ``step`` succeeded, its pod having written ``message`` (its outputs)."""
    if message:
        api.pods_by_job[job_of(api, step)["metadata"]["name"]] = message
    finish(api, store, step)


class OutputsApi(ScriptedApi):
    """The scripted API whose pods wrote the termination message a test gives them."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(body)
        self.pods_by_job: dict[str, str] = {}

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        message = self.pods_by_job.get(job, "")
        return [{"metadata": {"name": f"{job}-x", "creationTimestamp": rfc3339(NOW)}, "status": {
            "containerStatuses": [{"name": "step", "state": {"terminated": {"exitCode": 0,
                                                                            "message": message}}}]}}]


def fan_out_setup(items: list[str]) -> tuple[Reconciler, OutputsApi, Store, list[tuple[str, str]]]:
    reconciler, scripted, store = setup(copy.deepcopy(STEPS), maxConcurrency=10)
    api = OutputsApi(scripted.workflow)
    reconciler.api = reconciler.observer.api = api
    events: list[tuple[str, str]] = []
    reconciler.recorder.events.record = lambda obj, kind, reason, message: events.append(  # type: ignore[method-assign]
        (reason, message))
    reconciler.reconcile(KEY)  # starts "list"
    store.put_workflow(copy.deepcopy(api.workflow))
    succeed(api, store, "list", "items=" + json.dumps(items))
    return reconciler, api, store, events


def test_the_expansion_is_written_to_status_before_any_copy_has_a_job():
    reconciler, api, store, events = fan_out_setup(["api", "web", "db"])
    created_before = list(api.created)
    assert reconciler.reconcile(KEY) == 0.0  # again at once: the copies start next time
    status = api.workflow["status"]
    assert api.created == created_before  # no copy's Job yet
    assert status["groups"][1] == ["build-0", "build-1", "build-2"]
    assert [status["steps"][f"build-{i}"]["matrix"] for i in range(3)] == [
        {"svc": "api"}, {"svc": "web"}, {"svc": "db"}]
    assert all(status["steps"][f"build-{i}"]["phase"] == "Pending" for i in range(3))
    assert status["steps"]["build"]["copies"] == 3 and status["progress"] == "1/5"
    assert [reason for reason, _ in events if reason == "MatrixExpanded"] == ["MatrixExpanded"]
    store.put_workflow(copy.deepcopy(api.workflow))
    reconciler.reconcile(KEY)
    copies = sorted(n for n in api.created if "-build-" in n)
    assert copies == ["wf-1-build-0", "wf-1-build-1", "wf-1-build-2"]
    env = {v["name"]: v.get("value") for v in job_of(api, "build-1")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["svc"] == "web" and env["STEPFLOW_MATRIX_INDEX"] == "1"
    assert job_of(api, "build-1")["metadata"]["labels"]["stepflow.dev/matrix-of"] == "build"
    assert [reason for reason, _ in events if reason == "MatrixExpanded"] == ["MatrixExpanded"]  # once


def test_a_new_operator_starts_the_recorded_copies_not_a_new_reading():
    reconciler, api, _, _ = fan_out_setup(["api", "web"])
    reconciler.reconcile(KEY)  # the expansion, recorded
    # The output now reads differently (a status patched by hand, say): the record wins.
    api.workflow["status"]["steps"]["list"]["outputs"]["items"] = json.dumps(["x", "y", "z"])
    restarted = restarted_operator(api)
    restarted.reconcile(KEY)
    copies = sorted(n for n in api.created if "-build-" in n)
    assert copies == ["wf-1-build-0", "wf-1-build-1"]
    assert job_of(api, "build-0")["spec"]["template"]["spec"]["containers"][0]["env"][0] == {
        "name": "svc", "value": "api"}


def test_an_empty_list_is_recorded_as_a_skip_and_the_run_goes_on():
    reconciler, api, store, _ = fan_out_setup([])
    reconciler.reconcile(KEY)
    build = api.workflow["status"]["steps"]["build"]
    assert (build["phase"], build["reason"]) == ("Skipped", "MatrixEmpty")
    store.put_workflow(copy.deepcopy(api.workflow))
    reconciler.reconcile(KEY)
    env = job_of(api, "report")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "IMAGES", "value": "[]"} in env  # M5: no copy, so an empty array
