"""kopf's settings as the operator tunes them: what the API server is asked to filter."""

from __future__ import annotations

import kopf
from kopf._cogs.structs import references

from stepflow.operator.handlers import tune


def resource(group: str, plural: str, kind: str) -> references.Resource:
    return references.Resource(group=group, version="v1", plural=plural, kind=kind,
                               singular=kind.lower(), namespaced=True, verbs=["list", "watch"])


def test_jobs_and_pods_are_filtered_by_the_api_server_not_after_the_fact():
    """A handler's labels= filter is applied by kopf after each event arrives; only a
    label selector in the settings keeps other Jobs and pods off the wire. ("batch/jobs", the
    key an earlier release used, selects nothing: kopf reads it as a group and a version.)"""
    settings = kopf.OperatorSettings()
    tune(settings)
    selector = "app.kubernetes.io/managed-by=stepflow"
    for watched in (resource("batch", "jobs", "Job"), resource("", "pods", "Pod")):
        assert list(settings.watching.label_selectors.collect(watched)) == [selector], watched
    workflows = references.Resource(group="stepflow.dev", version="v1alpha1", plural="workflows",
                                    kind="Workflow", singular="workflow", namespaced=True)
    assert list(settings.watching.label_selectors.collect(workflows)) == []


def test_the_pod_watch_shows_only_pods_that_have_ended():
    """A pending or running pod is three watch events per step that tell nothing a Job does
    not; a Job that waits for its pod is swept and looked into instead (Store.waiting_jobs)."""
    settings = kopf.OperatorSettings()
    tune(settings)
    assert list(settings.watching.field_selectors.collect(resource("", "pods", "Pod"))) == [
        "status.phase!=Pending,status.phase!=Running"]
    assert list(settings.watching.field_selectors.collect(resource("batch", "jobs", "Job"))) == []
