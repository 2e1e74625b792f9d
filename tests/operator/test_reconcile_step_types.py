"""Step types in the operator, one reconcile at a time (T4, T5): a workflow waits for a missing
type and is woken by its watch event; a run keeps what it resolved, also in a new operator."""

from __future__ import annotations

import copy
from typing import Any

from scripted_api import KEY, ScriptedApi, finish, job_of, restarted_operator, setup
from stepflow.operator.reconcile import Reconciler

STEPS = [{"name": "scan", "type": "scanner", "with": {"TARGET": "$(SECRET)"}},
         {"name": "report", "type": "scanner"}, {"name": "publish", "type": "scanner"}]


def scanner(image: str, version: str, namespace: str | None = "default") -> dict[str, Any]:
    meta = {"name": "scanner", "resourceVersion": version}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": {"image": image, "script": 'scan "$TARGET"',
                                       "params": [{"name": "TARGET", "default": "."}]}}


class TypedApi(ScriptedApi):
    """The scripted API, with step types that a list by name finds."""

    def __init__(self, body: dict[str, Any]):
        super().__init__(body)
        self.step_types: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.lookups: list[tuple[str | None, str]] = []

    def find_step_type(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.lookups.append((namespace, name))
        return self.step_types.get((namespace, name))


def typed_setup() -> tuple[Reconciler, TypedApi, Any, list[tuple[str, str, str]]]:
    reconciler, scripted, store = setup(copy.deepcopy(STEPS))
    api = TypedApi(scripted.workflow)
    reconciler.api = api
    reconciler.observer.api = api
    events: list[tuple[str, str, str]] = []
    reconciler.recorder.events.record = lambda obj, kind, reason, message: events.append(  # type: ignore[method-assign]
        (kind, reason, message))
    return reconciler, api, store, events


def container(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


def test_a_workflow_waits_for_its_missing_type_and_its_watch_event_starts_it():
    reconciler, api, store, events = typed_setup()
    assert reconciler.reconcile(KEY) is None  # no polling: the watch event wakes it
    status = api.workflow["status"]
    assert (status["phase"], status["reason"]) == ("Pending", "StepTypeNotFound")
    assert '"scanner" (steps spec.steps[0], spec.steps[1], spec.steps[2])' in status["message"]
    assert [(kind, reason) for kind, reason, _ in events] == [("Warning", "StepTypeNotFound")]
    assert api.created == [] and ("default", "scanner") in api.lookups
    assert "runGeneration" not in status  # no run has started

    store.put_workflow(copy.deepcopy(api.workflow))
    reconciler.reconcile(KEY)
    assert len(events) == 1  # the same news is not announced twice

    assert reconciler.types.put(scanner("scanner:1", "41", None), "ClusterStepType") == [KEY]
    reconciler.reconcile(KEY)
    scan = container(job_of(api, "scan"))
    assert scan["image"] == "scanner:1"
    assert scan["env"][0] == {"name": "TARGET", "value": "$$(SECRET)"}  # literal through the kubelet
    kept = api.workflow["status"]["stepTypes"]["scanner"]
    assert (kept["kind"], kept["resourceVersion"]) == ("ClusterStepType", "41")
    assert kept["spec"]["image"] == "scanner:1"


def test_a_type_the_watch_has_not_shown_yet_is_found_by_asking_the_api():
    reconciler, api, _, events = typed_setup()
    api.step_types[("default", "scanner")] = scanner("team:1", "7")
    reconciler.reconcile(KEY)
    assert container(job_of(api, "scan"))["image"] == "team:1" and events == []


def test_a_run_keeps_its_types_when_they_change_and_in_a_new_operator():
    reconciler, api, store, _ = typed_setup()
    reconciler.types.put(scanner("scanner:1", "41"), "StepType")
    reconciler.reconcile(KEY)
    assert container(job_of(api, "scan"))["image"] == "scanner:1"

    assert reconciler.types.put(scanner("scanner:2", "42"), "StepType") == []  # starts nothing
    finish(api, store, "scan")
    reconciler.reconcile(KEY)
    assert container(job_of(api, "report"))["image"] == "scanner:1"

    # A new operator, whose watch and caches show only what is there now, finishes the same run.
    finish(api, store, "report")
    restarted = restarted_operator(api)
    restarted.types.put(scanner("scanner:2", "42"), "StepType")
    restarted.reconcile(KEY)
    assert container(job_of(api, "publish"))["image"] == "scanner:1"
    assert api.workflow["status"]["stepTypes"]["scanner"]["resourceVersion"] == "41"


def test_a_bad_param_is_invalid_spec_with_the_field_path_and_no_job():
    reconciler, api, _, events = typed_setup()
    reconciler.types.put(scanner("scanner:1", "41"), "StepType")
    api.workflow["spec"]["steps"][1]["with"] = {"TARGT": "x"}
    reconciler.store.put_workflow({**copy.deepcopy(api.workflow),
                                   "metadata": {**api.workflow["metadata"], "resourceVersion": "2"}})
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec")
    assert 'spec.steps[1].with.TARGT: step "report" (type "scanner", a StepType): unknown param' in (
        status["message"])
    assert api.created == [] and ("Warning", "InvalidSpec") in [(k, r) for k, r, _ in events]


def test_a_type_the_api_has_but_stepflow_cannot_use_is_named_in_the_waiting_message():
    """The API server cannot check everything a type says (here: a variable declared twice);
    the workflow waits, and its message says why the type that exists does not count."""
    reconciler, api, _, _ = typed_setup()
    broken = scanner("scanner:1", "41")
    broken["spec"]["env"] = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    assert reconciler.types.put(broken, "StepType") == []
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert (status["phase"], status["reason"]) == ("Pending", "StepTypeNotFound")
    assert "StepType scanner exists but is not usable" in status["message"]
    assert 'declares "A" again' in status["message"] and api.created == []
