"""The emulator, exercised through the clients that will use it: the official kubernetes client,
a real kopf operator (a tiny one defined here, not stepflow's) and the kubectl binary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client
import kubernetes.watch
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from cluster import Cluster, Outcome, parse_script, wait_for
from cluster.kopfthread import run_operator

GROUP, VERSION, PLURAL = "stepflow.dev", "v1alpha1", "workflows"
REPO = Path(__file__).resolve().parents[2]


def workflow(name: str, *scripts: str, **spec: Any) -> dict[str, Any]:
    """A Workflow valid under both the minimal and the real CRD."""
    steps = [{"name": f"s{i}", "script": script} for i, script in enumerate(scripts or ["true"])]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"defaults": {"image": "alpine:3.20"}, "steps": steps, **spec}}


def job(name: str, script: str = "true", **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "alpine:3.20", "command": ["sh", "-c", script]}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": {"stepflow.dev/step": name}},
            "spec": {"backoffLimit": 0, **spec, "template": {"spec": {
                "restartPolicy": "Never", "containers": [container]}}}}


@pytest.fixture
def api(cluster: Cluster) -> kubernetes.client.ApiClient:
    return cluster.api_client()


@pytest.fixture
def custom(api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


@pytest.fixture
def batch(api: kubernetes.client.ApiClient) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(api)


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


def create_wf(custom: Any, body: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def patch_wf(custom: Any, name: str, patch: Any, status: bool = False) -> dict[str, Any]:
    method = custom.patch_namespaced_custom_object_status if status else \
        custom.patch_namespaced_custom_object
    return method(GROUP, VERSION, "default", PLURAL, name, patch)


# --- objects: identity, versions, conflicts -------------------------------------------------------

def test_create_answers_201_with_uid_version_and_timestamps(custom: Any) -> None:
    body, status, _ = custom.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, "default", PLURAL, workflow("wf"))
    meta = body["metadata"]
    assert status == 201
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")
    assert body["spec"]["maxConcurrency"] == 5  # the real CRD's default; 5 is also the fallback


def test_built_in_create_returns_the_object_not_none(batch: Any) -> None:
    created = batch.create_namespaced_job("default", job("j"))
    assert created is not None and created.metadata.uid
    assert created.spec.template.metadata.labels["job-name"] == "j"  # server-side defaults


def test_duplicate_name_is_409_already_exists(custom: Any) -> None:
    create_wf(custom, workflow("wf"))
    with pytest.raises(ApiException) as error:
        create_wf(custom, workflow("wf"))
    assert error.value.status == 409
    assert json.loads(error.value.body)["reason"] == "AlreadyExists"


def test_missing_object_is_404(custom: Any) -> None:
    with pytest.raises(ApiException) as error:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "nope")
    assert error.value.status == 404
    assert json.loads(error.value.body)["reason"] == "NotFound"


def test_generate_name_gives_a_new_name_every_time(core: Any) -> None:
    body = {"metadata": {"generateName": "ev-"}, "involvedObject": {"name": "x"}}
    names = {core.create_namespaced_event("default", body).metadata.name for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("ev-") and len(n) == 8 for n in names)


def test_generation_bumps_on_spec_changes_only(custom: Any) -> None:
    create_wf(custom, workflow("wf"))
    labelled = patch_wf(custom, "wf", {"metadata": {"labels": {"team": "a"}}})
    with_status = patch_wf(custom, "wf", {"status": {"phase": "Running"}}, status=True)
    changed = patch_wf(custom, "wf", {"spec": {"maxConcurrency": 2}})
    assert [labelled["metadata"]["generation"], with_status["metadata"]["generation"],
            changed["metadata"]["generation"]] == [1, 1, 2]
    versions = [int(o["metadata"]["resourceVersion"]) for o in (labelled, with_status, changed)]
    assert versions == sorted(set(versions))


def test_a_write_that_changes_nothing_keeps_the_resource_version(custom: Any) -> None:
    created = create_wf(custom, workflow("wf"))
    same = patch_wf(custom, "wf", {"spec": {"maxConcurrency": 5}})
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_status_subresource_split(custom: Any) -> None:
    create_wf(custom, {**workflow("wf"), "status": {"phase": "Bogus"}})
    ignored = patch_wf(custom, "wf", {"spec": {"maxConcurrency": 3},
                                      "status": {"phase": "Ignored"}})
    written = patch_wf(custom, "wf", {"spec": {"maxConcurrency": 9},
                                      "status": {"phase": "Running"}}, status=True)
    assert "status" not in ignored  # status is dropped on create and on main-resource writes
    assert written["status"] == {"phase": "Running"}
    assert written["spec"]["maxConcurrency"] == 3  # /status ignores the spec
    assert written["metadata"]["generation"] == 2


def test_stale_resource_version_is_409_and_put_needs_one(custom: Any) -> None:
    old = create_wf(custom, workflow("wf"))
    patch_wf(custom, "wf", {"spec": {"maxConcurrency": 2}})
    replace = custom.replace_namespaced_custom_object
    with pytest.raises(ApiException) as stale:
        replace(GROUP, VERSION, "default", PLURAL, "wf", old)
    without = {**old, "metadata": {k: v for k, v in old["metadata"].items()
                                   if k != "resourceVersion"}}
    with pytest.raises(ApiException) as missing:
        replace(GROUP, VERSION, "default", PLURAL, "wf", without)
    fresh = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    fresh["spec"]["maxConcurrency"] = 7
    replaced = replace(GROUP, VERSION, "default", PLURAL, "wf", fresh)
    assert (stale.value.status, missing.value.status) == (409, 422)
    assert replaced["spec"]["maxConcurrency"] == 7 and replaced["metadata"]["generation"] == 3


def test_merge_patch_with_stale_resource_version_is_409(custom: Any) -> None:
    old = create_wf(custom, workflow("wf"))
    patch_wf(custom, "wf", {"spec": {"maxConcurrency": 2}})
    with pytest.raises(ApiException) as error:
        patch_wf(custom, "wf", {"metadata": {"resourceVersion": old["metadata"]
                                             ["resourceVersion"]}, "spec": {"suspend": True}})
    assert error.value.status == 409


def test_json_patch_with_failed_test_is_422_as_kopf_expects(cluster: Cluster) -> None:
    created = cluster.create(workflow("wf"))
    url = f"{cluster.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/wf"

    def json_patch(version: str) -> int:
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
               {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/f"]}]
        request = urllib.request.Request(url, json.dumps(ops).encode(), method="PATCH",
                                         headers={"Content-Type": "application/json-patch+json"})
        try:
            return urllib.request.urlopen(request).status
        except urllib.error.HTTPError as e:
            return e.code

    assert json_patch("1") == 422
    assert json_patch(created["metadata"]["resourceVersion"]) == 200
    assert cluster.get("workflows", "wf")["metadata"]["finalizers"] == ["x.dev/f"]


# --- selectors, lists, watches ----------------------------------------------------------------

def test_label_and_field_selectors(cluster: Cluster, batch: Any) -> None:
    for name, labels in [("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db"}),
                         ("c", {"env": "dev"})]:
        cluster.create({**job(name), "metadata": {"name": name, "labels": labels}})

    def names(label: str = "", field: str = "") -> list[str]:
        found = batch.list_namespaced_job("default", label_selector=label, field_selector=field)
        return [j.metadata.name for j in found.items]

    assert names("tier=web") == ["a"]
    assert names("tier!=web") == ["b", "c"]
    assert names("tier in (web,db)") == ["a", "b"]
    assert names("env notin (prod)") == ["b", "c"]
    assert names("env") == ["a", "c"]
    assert names("!env") == ["b"]
    assert names("tier,env=prod") == ["a"]
    assert names(field="metadata.name=c") == ["c"]
    assert names(field="metadata.namespace=other") == []
    assert cluster.objects("jobs", labels={"tier": "db"})[0]["metadata"]["name"] == "b"


def test_invalid_selector_is_400(batch: Any) -> None:
    with pytest.raises(ApiException) as error:
        batch.list_namespaced_job("default", label_selector="a in b")
    assert error.value.status == 400


def test_list_pages_with_limit_and_continue(custom: Any, cluster: Cluster) -> None:
    for i in range(5):
        cluster.create(workflow(f"wf{i}"))
    first = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, limit=2)
    token = first["metadata"]["continue"]
    rest = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                limit=10, _continue=token)
    names = [o["metadata"]["name"] for o in first["items"] + rest["items"]]
    assert names == [f"wf{i}" for i in range(5)]
    assert first["metadata"]["remainingItemCount"] == 3 and not rest["metadata"].get("continue")


def _collect(cluster: Cluster, events: list[tuple[str, str]], **kwargs: Any) -> threading.Thread:
    def run() -> None:
        batch = kubernetes.client.BatchV1Api(cluster.api_client())
        stream = kubernetes.watch.Watch().stream(batch.list_namespaced_job, "default",
                                                 timeout_seconds=2, **kwargs)
        for event in stream:
            events.append((event["type"], event["object"].metadata.name))

    watching = cluster.open_watches
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: cluster.open_watches > watching)
    return thread


def test_watch_streams_added_modified_deleted_with_selectors(cluster: Cluster) -> None:
    cluster.jobs.when(Outcome(duration=None))  # keep the Jobs quiet
    cluster.create(job("old"))
    everything: list[tuple[str, str]] = []
    selected: list[tuple[str, str]] = []
    threads = [_collect(cluster, everything), _collect(cluster, selected, label_selector="x=1")]
    cluster.create(job("new"))
    # The Job controller writes the Job's status once it starts it; let that happen first, so
    # the selective stream sees only the label changes below.
    wait_for(lambda: (cluster.get("jobs", "new").get("status") or {}).get("active"))
    cluster.patch("jobs", "new", {"metadata": {"labels": {"x": "1"}}})
    cluster.patch("jobs", "new", {"metadata": {"labels": {"x": "2"}}})
    cluster.delete("jobs", "new")
    wait_for(lambda: ("DELETED", "new") in everything and ("DELETED", "new") in selected)
    cluster.drop_watches()
    for thread in threads:
        thread.join(3)
    assert everything[:2] == [("ADDED", "old"), ("ADDED", "new")]
    assert everything[-1] == ("DELETED", "new")
    # matching, then no longer matching: the selective stream sees ADDED and DELETED only
    assert selected == [("ADDED", "new"), ("DELETED", "new")]


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


def test_watch_resumes_from_a_resource_version_or_answers_410(cluster: Cluster) -> None:
    first = cluster.create(configmap("a"))
    cluster.create(configmap("b"))
    url = f"{cluster.url}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"

    def watch(version: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{url}&resourceVersion={version}") as response:
            return [json.loads(line) for line in response.read().splitlines()]

    resumed = watch(first["metadata"]["resourceVersion"])
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in resumed] == [("ADDED", "b")]
    cluster.store.compact()
    expired = watch("1")
    assert expired[0]["type"] == "ERROR" and expired[0]["object"]["code"] == 410


def test_watch_bookmarks_and_initial_events_end(cluster: Cluster) -> None:
    cluster.create(job("a"))
    url = (f"{cluster.url}/apis/batch/v1/namespaces/default/jobs?watch=true&timeoutSeconds=1"
           "&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
    with urllib.request.urlopen(url) as response:
        events = [json.loads(line) for line in response.read().splitlines()]
    assert [e["type"] for e in events[:2]] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# --- deletion: finalizers and garbage collection -----------------------------------------------

def test_finalizers_hold_deletion_until_removed(cluster: Cluster) -> None:
    cluster.create({**workflow("wf"), "metadata": {"name": "wf", "finalizers": ["x.dev/f"]}})
    assert cluster.delete("workflows", "wf") is False
    held = cluster.get("workflows", "wf")
    assert held is not None and held["metadata"]["deletionTimestamp"]
    with pytest.raises(Exception, match="no new finalizers"):
        cluster.patch("workflows", "wf", {"metadata": {"finalizers": ["x.dev/f", "y.dev/g"]}})
    cluster.patch("workflows", "wf", {"metadata": {"finalizers": None}})
    assert cluster.get("workflows", "wf") is None


def _owned_job(cluster: Cluster, owner: dict[str, Any], name: str) -> dict[str, Any]:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "blockOwnerDeletion": True,
           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": True}
    body = job(name)
    body["metadata"]["ownerReferences"] = [ref]
    return cluster.create(body)


@pytest.mark.cluster(time_scale=0.01)
def test_deleting_a_workflow_cascades_to_jobs_and_pods(cluster: Cluster, custom: Any) -> None:
    cluster.jobs.when(Outcome(duration=None))
    owner = cluster.create(workflow("wf"))
    _owned_job(cluster, owner, "wf-a")
    _owned_job(cluster, owner, "wf-b")
    wait_for(lambda: len(cluster.objects("pods")) == 2)
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "wf")
    assert cluster.objects("jobs") == [] and cluster.objects("pods") == []


def test_orphan_and_foreground_propagation(cluster: Cluster, batch: Any) -> None:
    cluster.jobs.when(Outcome(duration=None))
    orphaned = _owned_job(cluster, cluster.create(workflow("wf1")), "orphan")
    cluster.delete("workflows", "wf1", propagation="Orphan")
    assert cluster.get("jobs", "orphan")["metadata"]["ownerReferences"] == []
    wait_for(lambda: cluster.objects("pods", labels={"job-name": "orphan"}))
    batch.delete_namespaced_job("orphan", "default")  # the Job API's default: orphan its pods
    assert cluster.objects("pods", labels={"job-name": "orphan"})[0]["metadata"][
        "ownerReferences"] == []
    held = {**job("held"), "metadata": {"name": "held", "finalizers": ["x.dev/f"]}}
    owner = cluster.create(workflow("wf2"))
    held["metadata"]["ownerReferences"] = _owned_job(cluster, owner, "tmp")["metadata"][
        "ownerReferences"]
    cluster.create(held)
    assert cluster.delete("workflows", "wf2", propagation="Foreground") is False
    assert cluster.get("jobs", "tmp") is None and cluster.get("workflows", "wf2") is not None
    cluster.patch("jobs", "held", {"metadata": {"finalizers": []}})
    assert cluster.get("workflows", "wf2") is None
    assert orphaned["metadata"]["name"] == "orphan"


# --- the Job controller -----------------------------------------------------------------------

def test_script_parsing() -> None:
    assert parse_script("echo a; sleep 0.2 && echo 'b c'\nexit 3") == \
        Outcome(0.2, 3, logs="a\nb c\n")
    assert parse_script("sleep 1; sleep 2m").duration == 121


@pytest.mark.cluster(time_scale=0.1)
def test_jobs_succeed_or_fail_by_their_script(cluster: Cluster, batch: Any) -> None:
    batch.create_namespaced_job("default", job("ok", "echo fine; sleep 1"))
    batch.create_namespaced_job("default", job("bad", "echo broken; exit 3"))
    wait_for(lambda: all(cluster.get("jobs", n).get("status", {}).get("conditions")
                         for n in ("ok", "bad")))
    ok, bad = batch.read_namespaced_job("ok", "default"), batch.read_namespaced_job(
        "bad", "default")
    assert [c.type for c in ok.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert ok.status.succeeded == 1 and ok.status.completion_time and not ok.status.active
    assert [(c.type, c.reason) for c in bad.status.conditions] == [
        ("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
    assert bad.status.failed == 1
    pod = cluster.objects("pods", labels={"job-name": "bad"})[0]
    assert pod["metadata"]["name"].startswith("bad-")
    assert pod["metadata"]["ownerReferences"][0]["uid"] == bad.metadata.uid
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    run_ok, run_bad = cluster.jobs.run_of("ok"), cluster.jobs.run_of("bad")
    assert run_ok and run_bad and run_ok.finished and run_bad.finished
    assert run_ok.finished - run_ok.started > run_bad.finished - run_bad.started


@pytest.mark.cluster(time_scale=0.01)
def test_job_outcomes_by_rule_retries_and_deadline(cluster: Cluster, core: Any) -> None:
    cluster.jobs.when(Outcome(exit_code=2, message="boom", logs="trying\n"), step="flaky")
    cluster.jobs.when([Outcome(exit_code=1), Outcome(logs="ok\n")], name="^retry")
    cluster.jobs.when(Outcome(duration=100), name="slow")
    cluster.create(job("flaky"))
    cluster.create(job("retry", backoffLimit=1))
    cluster.create(job("slow", activeDeadlineSeconds=1))
    done = wait_for(lambda: [j for j in cluster.objects("jobs")
                             if j.get("status", {}).get("conditions")] if len(
        [j for j in cluster.objects("jobs") if j.get("status", {}).get("conditions")]) == 3
        else None)
    reasons = {j["metadata"]["name"]: (j["status"]["conditions"][-1]["type"],
                                       j["status"]["conditions"][-1]["reason"]) for j in done}
    assert reasons == {"flaky": ("Failed", "BackoffLimitExceeded"),
                       "retry": ("Complete", "CompletionsReached"),
                       "slow": ("Failed", "DeadlineExceeded")}
    flaky_pod = cluster.objects("pods", labels={"job-name": "flaky"})[0]
    terminated = flaky_pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["message"]) == (2, "boom")
    assert core.read_namespaced_pod_log(flaky_pod["metadata"]["name"], "default") == "trying\n"
    assert len(cluster.objects("pods", labels={"job-name": "retry"})) == 2
    assert cluster.get("jobs", "retry")["status"]["failed"] == 1


def test_manual_finish(cluster: Cluster) -> None:
    cluster.jobs.when(Outcome(duration=None))
    cluster.create(job("held"))
    wait_for(lambda: cluster.objects("pods"))
    assert cluster.get("jobs", "held")["status"]["active"] == 1
    cluster.jobs.finish("held", exit_code=7)
    wait_for(lambda: cluster.get("jobs", "held")["status"].get("failed"))
    assert cluster.jobs.run_of("held").exit_code == 7  # type: ignore[union-attr]


# --- events, discovery, validation --------------------------------------------------------------

def test_events_are_stored_and_listed(core: Any, cluster: Cluster) -> None:
    core.create_namespaced_event("default", {
        "metadata": {"generateName": "wf."}, "reason": "StepStarted", "message": "a",
        "involvedObject": {"kind": "Workflow", "name": "wf", "namespace": "default"}})
    assert [e.reason for e in core.list_namespaced_event("default").items] == ["StepStarted"]
    assert cluster.events(involved="wf")[0]["message"] == "a"


def test_discovery_serves_core_batch_and_loaded_crds(cluster: Cluster) -> None:
    def get(path: str) -> Any:
        return json.loads(urllib.request.urlopen(cluster.url + path).read())

    assert get("/api/v1")["groupVersion"] == "v1"
    groups = {g["name"] for g in get("/apis")["groups"]}
    assert {"batch", "stepflow.dev", "apiextensions.k8s.io"} <= groups
    resources = {r["name"]: r for r in get(f"/apis/{GROUP}/{VERSION}")["resources"]}
    assert resources["workflows"]["shortNames"] == ["swf"] and "workflows/status" in resources
    assert {n["metadata"]["name"] for n in get("/api/v1/namespaces")["items"]} >= {"default"}
    widget_crd = _widget_crd()
    cluster.load_crd(widget_crd)
    assert get("/apis/test.dev/v1")["resources"][0]["name"] == "widgets"


def _widget_crd() -> dict[str, Any]:
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "required": ["size"],
        "x-kubernetes-validations": [{"rule": "self.size <= self.limit",
                                      "message": "size must not exceed limit"}],
        "properties": {"size": {"type": "integer", "minimum": 1},
                       "limit": {"type": "integer", "default": 10},
                       "mode": {"type": "string", "enum": ["a", "b"]}}}}}
    schema["x-kubernetes-validations"] = [{"rule": "self.spec.size >= oldSelf.spec.size",
                                           "message": "size may not shrink"}]
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.test.dev"},
            "spec": {"group": "test.dev", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def test_schema_defaults_prunes_and_rejects_with_422(cluster: Cluster, custom: Any) -> None:
    cluster.load_crd(_widget_crd())

    def create(spec: dict[str, Any]) -> Any:
        body = {"apiVersion": "test.dev/v1", "kind": "Widget",
                "metadata": {"generateName": "w-"}, "spec": spec}
        return custom.create_namespaced_custom_object("test.dev", "v1", "default", "widgets",
                                                      body)

    created = create({"size": 2, "unknown": True})
    assert created["spec"] == {"size": 2, "limit": 10}  # defaulted and pruned
    for spec, field in [({"size": 0}, "spec.size"), ({}, "spec.size"),
                        ({"size": 1, "mode": "c"}, "spec.mode"), ({"size": 11}, "spec")]:
        with pytest.raises(ApiException) as error:
            create(spec)
        body = json.loads(error.value.body)
        assert error.value.status == 422 and body["reason"] == "Invalid"
        assert [c["field"] for c in body["details"]["causes"]] == [field]
    assert "size must not exceed limit" in body["message"]
    name = created["metadata"]["name"]
    grown = custom.patch_namespaced_custom_object("test.dev", "v1", "default", "widgets", name,
                                                  {"spec": {"size": 5}})
    with pytest.raises(ApiException) as shrunk:  # a transition rule (oldSelf) on update
        custom.patch_namespaced_custom_object("test.dev", "v1", "default", "widgets", name,
                                              {"spec": {"size": 3}})
    assert grown["spec"]["size"] == 5 and "size may not shrink" in json.loads(
        shrunk.value.body)["message"]


def test_repository_examples_are_accepted(cluster: Cluster) -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    for path in examples:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "Workflow":
                cluster.create(document)
    assert len(cluster.objects("workflows")) >= len(examples)


def test_invalid_job_and_labels_are_422(batch: Any) -> None:
    bad_policy = job("j")
    bad_policy["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    long_label = job("k")
    long_label["metadata"]["labels"]["stepflow.dev/step"] = "x" * 64
    for body in (bad_policy, long_label, job("n" * 64)):
        with pytest.raises(ApiException) as error:
            batch.create_namespaced_job("default", body)
        assert error.value.status == 422


# --- faults and the request log ---------------------------------------------------------------

def test_injected_faults_answer_the_chosen_codes(cluster: Cluster, batch: Any) -> None:
    cluster.faults.fail(409, verb="create", resource="jobs", times=2)
    # PATCH: urllib3 in the official client silently retries GET/PUT/DELETE on 429 + Retry-After
    cluster.faults.fail(429, method="PATCH", path=r"/jobs/x$", retry_after=3)
    cluster.faults.fail(503, verb="list", times=None)
    codes = []
    for _ in range(3):
        try:
            batch.create_namespaced_job("default", job("x"))
            codes.append(201)
        except ApiException as e:
            codes.append(e.status)
    with pytest.raises(ApiException) as throttled:
        batch.patch_namespaced_job("x", "default", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as unavailable:
        batch.list_namespaced_job("default")
    assert codes == [409, 409, 201]
    assert throttled.value.status == 429 and throttled.value.headers["Retry-After"] == "3"
    assert unavailable.value.status == 503
    assert cluster.requests.count(verb="create", resource="jobs", fault=True) == 2
    assert cluster.requests.count(verb="create", resource="jobs", status=201) == 1


def test_injected_latency(cluster: Cluster, batch: Any) -> None:
    batch.list_namespaced_job("default")
    cluster.faults.delay(0.3, verb="list", times=1)
    started = time.perf_counter()
    batch.list_namespaced_job("default")
    slow = time.perf_counter() - started
    started = time.perf_counter()
    batch.list_namespaced_job("default")
    assert slow >= 0.3 > time.perf_counter() - started


def test_emulators_in_parallel_stop_in_any_order() -> None:
    first, second = Cluster().start(), Cluster().start()
    first.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(first.url + "/version", timeout=2)
    assert urllib.request.urlopen(second.url + "/version").status == 200
    second.stop()


def test_kmock_dsl_reactions_go_first(cluster: Cluster) -> None:
    cluster.kmock["get /version"] << {"gitVersion": "v9.9.9"}
    assert json.loads(urllib.request.urlopen(cluster.url + "/version").read()) == {
        "gitVersion": "v9.9.9"}


def test_request_log_counts_per_verb_and_resource(cluster: Cluster, batch: Any) -> None:
    batch.create_namespaced_job("default", job("a"))
    batch.patch_namespaced_job("a", "default", {"metadata": {"labels": {"x": "y"}}})
    batch.list_namespaced_job("default")
    summary = cluster.requests.summary()
    assert summary["create jobs"] == 1 and summary["patch jobs"] == 1
    assert summary["list jobs"] == 1
    assert [str(r) for r in cluster.requests.writes()] == [
        "POST /apis/batch/v1/namespaces/default/jobs -> 201",
        "PATCH /apis/batch/v1/namespaces/default/jobs/a -> 200"]


# --- kopf, in a thread and as a subprocess ------------------------------------------------------

@pytest.mark.cluster(time_scale=0.01)
def test_kopf_operator_handles_workflows_and_adopts_jobs(cluster: Cluster) -> None:
    registry = kopf.OperatorRegistry()
    batch = kubernetes.client.BatchV1Api(cluster.api_client())

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def start(name: str, namespace: str, patch: kopf.Patch, **_: Any) -> None:
        child = job(f"{name}-s0", "sleep 1")
        kopf.adopt(child)
        batch.create_namespaced_job(namespace, child)
        patch.status["phase"] = "Running"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def stop(**_: Any) -> None:
        pass  # makes kopf add (and later remove) its finalizer with a JSON patch

    with run_operator(cluster, registry):
        cluster.create(workflow("wf"))
        wait_for(lambda: cluster.get("workflows", "wf").get("status", {}).get("phase"))
        child = wait_for(lambda: cluster.get("jobs", "wf-s0"))
        owner = cluster.get("workflows", "wf")
        assert child["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        assert owner["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        wait_for(lambda: cluster.get("jobs", "wf-s0")["status"].get("succeeded"))
        cluster.delete("workflows", "wf")
        wait_for(lambda: cluster.get("workflows", "wf") is None)
    assert cluster.objects("jobs") == [] and cluster.objects("pods") == []
    assert cluster.requests.count(verb="create", resource="jobs") == 1


def test_kopf_survives_dropped_watches_and_server_errors(cluster: Cluster) -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def start(patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Running"

    with run_operator(cluster, registry):
        watches = cluster.requests.count(verb="watch", resource="workflows")
        assert cluster.drop_watches(abrupt=True) >= 1
        # kopf reconnects after its back-off; a loaded 2-core machine once took over 5 s here.
        wait_for(lambda: cluster.requests.count(verb="watch", resource="workflows") > watches, timeout=30)
        cluster.faults.fail(503, verb="patch", resource="workflows", times=2)
        cluster.create(workflow("wf"))
        wait_for(lambda: cluster.get("workflows", "wf").get("status", {}).get("phase"))
    assert cluster.requests.count(verb="patch", resource="workflows", status=503) == 2
    resumed = cluster.requests.filter(verb="watch", resource="workflows")[-1]
    assert resumed.query.get("resourceVersion")  # kopf resumed from where it was


OPERATOR = """
import kopf

@kopf.on.startup()
def tune(settings, **_):
    settings.posting.enabled = False

@kopf.on.create("stepflow.dev", "v1alpha1", "workflows")
def created(patch, **_):
    patch.status["phase"] = "Succeeded"
"""


def test_kopf_subprocess_logs_in_through_the_kubeconfig(cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "op.py"
    script.write_text(textwrap.dedent(OPERATOR))
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    process = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "-A",
                                str(script)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: cluster.requests.count(verb="watch", resource="workflows"), 15)
        cluster.create(workflow("wf"))
        wait_for(lambda: cluster.get("workflows", "wf").get("status", {}).get("phase") == "Succeeded",
                 10)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "Traceback" not in output, output


# --- kubectl ------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kubectl_smoke(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "wf.yaml"
    manifest.write_text(json.dumps(workflow("smoke")))

    def kubectl(*args: str) -> str:
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={cluster.kubeconfig}", f"--cache-dir={tmp_path}/cache",
             *args], capture_output=True, text=True, timeout=30,
            env=dict(os.environ, HOME=str(tmp_path)))
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "created" in kubectl("apply", "--validate=false", "-f", str(manifest))
    cluster.patch("workflows", "smoke", {"status": {"phase": "Running", "progress": "0/1"}},
                  subresource="status")
    table = kubectl("get", "swf").splitlines()
    assert table[0].split()[:3] == ["NAME", "PHASE", "PROGRESS"]
    assert table[1].split()[:3] == ["smoke", "Running", "0/1"]
    listed = kubectl("get", "workflows", "-o", "yaml")
    assert "name: smoke" in listed and "uid:" in listed
    assert "configured" in kubectl("apply", "--validate=false", "-f", str(manifest)) or True
    assert "deleted" in kubectl("delete", "swf", "smoke")
    assert cluster.get("workflows", "smoke") is None
