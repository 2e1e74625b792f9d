"""The API calls stepflow makes: Jobs, their pods and Events, Workflow and StepPool status.

The vocabulary only; retries, error translation and the leader's write fence are the
runtime's client's (:class:`stepflow.operator.runtime.api.Client`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from stepflow.operator.runtime.api import Client, NotFound
from stepflow.spec import API_GROUP, API_VERSION


class Api(Client):
    """The operator's whole vocabulary of API calls, as plain dicts."""

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=manifest)

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")

    def delete_job(self, namespace: str, name: str) -> None:
        """Background propagation: the Job goes at once, its pods right after."""
        with contextlib.suppress(NotFound):
            self.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                         body={"propagationPolicy": "Background"})

    def job_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        pods = self.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                            query={"labelSelector": f"job-name={job}"})
        return pods.get("items") or []

    def workflow_exists(self, namespace: str, name: str) -> bool:
        """By a list with a field selector: the operator may list Workflows but not get them."""
        found = self.request("GET", f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/workflows",
                             query={"fieldSelector": f"metadata.name={name}", "limit": 1})
        return bool(found.get("items"))

    def find_step_type(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A StepType of ``namespace``, or a ClusterStepType (None), by a list with a field
        selector: the operator may list and watch step types, not get them."""
        plural = "steptypes" if namespace else "clustersteptypes"
        where = f"/namespaces/{namespace}" if namespace else ""
        found = self.request("GET", f"/apis/{API_GROUP}/{API_VERSION}{where}/{plural}",
                             query={"fieldSelector": f"metadata.name={name}", "limit": 1})
        items = found.get("items") or []
        return items[0] if items else None

    def job_events(self, namespace: str, job: str, reason: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind=Job,involvedObject.name={job},reason={reason}"
        # resourceVersion 0: served from the API server's cache, not read through from etcd.
        events = self.request("GET", f"/api/v1/namespaces/{namespace}/events",
                              query={"fieldSelector": selector, "resourceVersion": "0"})
        return events.get("items") or []

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the status subresource: only the fields that changed."""
        return self.request(
            "PATCH", f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/workflows/{name}/status",
            body={"status": patch}, content_type="application/merge-patch+json")

    def patch_pool_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """R2: a StepPool's holders and waiting steps (a merge patch of its status)."""
        self.request(
            "PATCH", f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/steppools/{name}/status",
            body={"status": status}, content_type="application/merge-patch+json")
