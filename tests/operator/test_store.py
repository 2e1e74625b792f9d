"""The operator's cache decides which watch events are worth a reconcile."""

from __future__ import annotations

from stepflow.operator.store import Store

KEY = ("default", "wf")


def workflow(version: str, phase: str = "Running") -> dict:
    return {"metadata": {"namespace": "default", "name": "wf", "resourceVersion": version},
            "status": {"phase": phase}}


def job(version: str, **status) -> dict:
    return {"metadata": {"name": "wf-1-a", "resourceVersion": version}, "status": status}


def test_the_echo_of_our_own_status_write_is_not_news():
    store = Store()
    assert store.put_workflow(workflow("5"))
    assert store.put_workflow(workflow("7", "Succeeded"))  # our patch response
    assert not store.put_workflow(workflow("7", "Succeeded"))  # its watch echo
    assert not store.put_workflow(workflow("6"))  # a stale event never goes backwards
    assert store.workflow(KEY)["status"]["phase"] == "Succeeded"
    assert store.put_workflow(workflow("8"))


def test_the_cache_keeps_of_a_job_what_a_reconcile_reads_and_drops_its_bulk():
    store = Store()
    meta = {"name": "wf-1-a", "namespace": "default", "uid": "u1", "resourceVersion": "3",
            "labels": {"stepflow.dev/workflow": "wf"}, "ownerReferences": [{"uid": "w1"}],
            "creationTimestamp": "2026-01-01T00:00:00Z", "deletionTimestamp": "2026-01-01T00:00:09Z",
            "managedFields": [{"manager": "kube-controller-manager"}] * 20}
    status = {"active": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    store.put_job(KEY, {"metadata": meta, "spec": {"template": {"spec": {"containers": [{}]}}},
                        "status": status})
    cached = store.jobs(KEY)["wf-1-a"]
    assert cached == {"metadata": {k: v for k, v in meta.items() if k != "managedFields"}, "status": status}
    body = workflow("9")
    body["metadata"]["managedFields"] = [{"manager": "stepflow"}]
    body["spec"] = {"steps": [{"name": "a"}]}
    store.put_workflow(body)
    assert "managedFields" not in store.workflow(KEY)["metadata"]
    assert store.workflow(KEY)["spec"] == body["spec"] and "managedFields" in body["metadata"]


def test_only_job_changes_the_engine_reads_trigger_a_reconcile():
    store = Store()
    assert store.put_job(KEY, job("1"))  # first sighting: adopt it
    assert not store.put_job(KEY, job("2", active=1, startTime="2026-01-01T00:00:00Z"))
    assert store.put_job(KEY, job("3", active=1, failed=1))  # a retry: attempts changed
    done = [{"type": "Complete", "status": "True"}]
    assert store.put_job(KEY, job("4", succeeded=1, failed=1, conditions=done))
    assert store.jobs(KEY)["wf-1-a"]["metadata"]["resourceVersion"] == "4"
    deleting = job("5", succeeded=1, failed=1, conditions=done)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:09Z"
    assert store.put_job(KEY, deleting)


def test_a_late_deletion_of_an_old_object_never_drops_its_successor():
    # kopf orders events per object uid only: "deleted" of the old workflow (or Job) can be
    # handled after "added" of a new one with the same name.
    store = Store()
    new = workflow("20")
    new["metadata"]["uid"] = "uid-new"
    store.put_workflow(new)
    store.put_job(KEY, {**job("21"), "metadata": {**job("21")["metadata"], "uid": "job-new"}})
    store.drop_workflow(KEY, "uid-old")
    store.drop_job(KEY, "wf-1-a", "job-old")
    assert store.workflow(KEY)["metadata"]["uid"] == "uid-new"
    assert list(store.jobs(KEY)) == ["wf-1-a"]

    store.drop_job(KEY, "wf-1-a", "job-new")
    store.drop_workflow(KEY, "uid-new")
    assert store.workflow(KEY) is None and store.jobs(KEY) == {}


def test_a_relisting_finds_what_went_in_a_watch_gap():
    """kopf re-lists after a 410 Gone without DELETED events for what disappeared meanwhile."""
    store = Store()
    for name in ("wf", "gone"):
        store.put_workflow({"metadata": {"namespace": "default", "name": name, "resourceVersion": "1"}})
    store.put_job(KEY, job("2"))
    store.put_job(KEY, {"metadata": {"name": "wf-1-b", "resourceVersion": "3"}, "status": {}})
    assert store.listed("workflows", KEY)  # the first listed object starts a listing
    assert not store.listed("workflows", KEY)
    assert store.end_listing("workflows") == {(("default", "gone"), "")}
    assert store.listed("jobs", KEY, "wf-1-a")
    assert store.end_listing("jobs") == {(KEY, "wf-1-b")}
    assert store.end_listing("jobs") == set()  # each listing is judged once


def test_r3_admission_by_kueue_is_news_and_a_suspended_job_is_not_swept():
    store = Store(clock=lambda: 2e9)
    meta = {"name": "wf-1-a", "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    queued = {"metadata": meta, "spec": {"suspend": True, "template": {}}, "status": {}}
    assert store.put_job(KEY, queued)
    assert store.jobs(KEY)["wf-1-a"]["spec"] == {"suspend": True}  # kept: the reconcile reads it
    assert store.waiting_jobs(2e9) == set()  # no pod by design: nothing to look into
    admitted = {**queued, "metadata": {**queued["metadata"], "resourceVersion": "2"},
                "spec": {"suspend": False}}
    assert store.put_job(KEY, admitted)  # the un-suspend alone changes the step
    assert "spec" not in store.jobs(KEY)["wf-1-a"]


def test_a_new_leader_counts_running_copies_and_their_pool_but_not_a_matrix_steps_summary():
    store = Store()
    body = workflow("1")
    body["spec"] = {"steps": [{"name": "deploy", "pool": "prod", "matrix": {"r": ["a", "b", "c"]}}]}
    body["status"]["steps"] = {
        "deploy": {"phase": "Running", "copies": 3},
        "deploy-0": {"phase": "Running", "matrixOf": "deploy", "matrix": {"r": "a"}},
        "deploy-1": {"phase": "Running", "matrixOf": "deploy", "matrix": {"r": "b"}},
        "deploy-2": {"phase": "Pending", "matrixOf": "deploy", "matrix": {"r": "c"}}}
    store.put_workflow(body)
    assert store.running_steps() == {KEY: 2}
    assert store.running_in_pools() == {KEY: {"prod": ["deploy-0", "deploy-1"]}}
