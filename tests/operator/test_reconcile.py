"""The whole pipeline, one reconcile at a time, against a scripted API.

The e2e tests cover the usual flow; these pin down races and partial failures deterministically
(a refused Job, a Job left by a dead operator or by an earlier Workflow of the same name, a spec
change that lands between the cache and the status write).
"""

from __future__ import annotations

import pytest

from builders import within
from scripted_api import KEY, setup


def test_a_spec_change_carried_back_by_our_own_status_patch_is_reconciled_again():
    reconciler, api, store = setup([{"name": "a", "script": "true"}])
    api.bump_generation_on_patch = True
    delay = reconciler.reconcile(KEY)
    assert delay == 0.0  # the watch event of that change is older than the cache now
    assert store.workflow(KEY)["spec"]["suspend"] is True


def test_a_started_step_is_published_as_running_so_the_next_reconcile_writes_nothing():
    """DESIGN.md's budget of three writes per step: a status that said "1 starting" would be
    written again as "1 running" by the next reconcile."""
    reconciler, api, _ = setup([{"name": "a", "script": "true"}, {"name": "b", "script": "true"}])
    patches: list[dict] = []
    patch = api.patch_status
    api.patch_status = lambda ns, name, body: patches.append(body) or patch(ns, name, body)  # type: ignore[method-assign]
    reconciler.reconcile(KEY)
    assert api.workflow["status"]["steps"]["a"]["phase"] == "Running"
    assert "starting" not in api.workflow["status"]["message"]
    reconciler.reconcile(KEY)
    assert len(patches) == 1, patches[1:]


def test_a_condition_that_raises_at_evaluation_fails_its_step_instead_of_every_reconcile(monkeypatch):
    """W2 in the operator: an evaluation error is the step's (Failed, ConditionError), decided by
    the engine; the reconcile does not raise, so the run, its timeout and its finally steps go on."""
    from stepflow import conditions

    monkeypatch.setattr(conditions, "_check_cost", lambda checked, placeholders: None, raising=False)
    ten = "[1,2,3,4,5,6,7,8,9,10]"
    when = f"{ten}.all(x, {ten}.all(y, {ten}.all(z, {ten}.all(w, x + y + z + w > 0))))"
    reconciler, api, _ = setup([{"name": "b", "script": "true", "when": when}],
                               **{"finally": [{"name": "notify", "script": "true"}]})
    reconciler.reconcile(KEY)
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert (status["steps"]["b"]["phase"], status["steps"]["b"]["reason"]) == ("Failed", "ConditionError")
    assert "iterated more than 10,000 times" in status["steps"]["b"]["message"]
    assert [job for job in api.created if "notify" in job], api.created  # the finally step started


@pytest.mark.parametrize("request_, budget", [("1e100000000", "4"), ("2e5000", "1e5000")])
def test_a_hostile_quantity_is_invalid_spec_at_once_and_creates_no_job(request_, budget):
    """Issue 28, item 3: the operator calls the code that spun on 1e100000000 (and raised on
    2e5000 against 1e5000); it must answer, with the field path."""
    hostile = {"name": "a", "script": "true", "resources": {"requests": {"cpu": request_}}}
    reconciler, api, _ = setup([hostile], maxResources={"cpu": budget})
    with within(10):
        reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec")
    assert "spec.steps[0].resources.requests.cpu" in status["message"] and "Kubernetes" in status["message"]
    assert api.created == []
