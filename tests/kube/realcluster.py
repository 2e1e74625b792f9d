"""What a real-tier test needs of the control plane: objects, kubectl, step outcomes.

``Kube`` is bound to one namespace, fresh for each test, and talks to the API server with the
admin identity through the official client. The operator under test never uses it: it runs with
the token of deploy/'s ServiceAccount.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import config

from kube.controlplane import ControlPlane, cri_log
from operator_harness import ROOT
from stepflow.operator.api import Api
from stepflow.operator.runtime.api import NotFound

T = TypeVar("T")
FINISHED = ("Succeeded", "Failed")
CHAOS_FIGURES: dict[str, Any] = {}  # takeover times and soak figures, printed after the run
ANNOTATION = "test.stepflow.dev/"

# resource -> (API prefix, namespaced)
RESOURCES = {
    "workflows": ("/apis/stepflow.dev/v1alpha1", True),
    "steppools": ("/apis/stepflow.dev/v1alpha1", True),
    "steptypes": ("/apis/stepflow.dev/v1alpha1", True),
    "clustersteptypes": ("/apis/stepflow.dev/v1alpha1", False),
    "jobs": ("/apis/batch/v1", True),
    "pods": ("/api/v1", True),
    "events": ("/api/v1", True),
    "serviceaccounts": ("/api/v1", True),
    "resourcequotas": ("/api/v1", True),
    "namespaces": ("/api/v1", False),
    "nodes": ("/api/v1", False),
    "leases": ("/apis/coordination.k8s.io/v1", True),
    "rolebindings": ("/apis/rbac.authorization.k8s.io/v1", True),
    "customresourcedefinitions": ("/apis/apiextensions.k8s.io/v1", False),
}


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
             message: str | None = None) -> T:
    """Poll until ``predicate()`` is truthy and return its value; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def outcome(
    duration: str | None = None,
    exit_code: int | None = None,
    message: str | None = None,
    hold: bool = False,
    grace: str | None = None,
) -> dict[str, Any]:
    """``podMetadata`` that scripts a step pod's life through tests/kube/stages.yaml."""
    annotations = {}
    for key, value in (
        ("duration", duration),
        ("exit-code", exit_code),
        ("message", message),
        ("grace", grace),
    ):
        if value is not None:
            annotations[ANNOTATION + key] = str(value)
    if hold:
        annotations[ANNOTATION + "hold"] = "true"
    return {"annotations": annotations}


def step(name: str, duration: str | None = "200ms", **fields: Any) -> dict[str, Any]:
    """A step whose pod runs ``duration``; ``exit_code``, ``message``, ``hold`` script the rest."""
    scripted = {k: fields.pop(k) for k in ("exit_code", "message", "hold", "grace") if k in fields}
    return {
        "name": name,
        "script": f"echo {name}",
        "podMetadata": outcome(duration=duration, **scripted),
        **fields,
    }


def workflow(name: str, steps: Iterable[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec.setdefault("defaults", {"image": "alpine:3.20"})
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {**spec, "steps": list(steps)},
    }


class Kube:
    def __init__(self, plane: ControlPlane, namespace: str):
        self.plane = plane
        self.namespace = namespace
        self.api = Api(config.new_client_from_config(config_file=str(plane.kubeconfig)))

    # --- objects ------------------------------------------------------------------------------

    def path(
        self,
        resource: str,
        name: str | None = None,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> str:
        prefix, namespaced = RESOURCES[resource]
        path = prefix + (f"/namespaces/{namespace or self.namespace}" if namespaced else "") + f"/{resource}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        resource = obj["kind"].lower() + "s"
        if RESOURCES[resource][1]:
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace or self.namespace}}
        return self.api.request("POST", self.path(resource, namespace=namespace), body=obj)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.api.request("GET", self.path(resource, name, namespace))
        except NotFound:
            return None

    def objects(
        self, resource: str, labels: dict[str, str] | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        return self.api.request("GET", self.path(resource, namespace=namespace), query=query)["items"]

    def patch(
        self,
        resource: str,
        name: str,
        patch: dict[str, Any],
        subresource: str | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        return self.api.request(
            "PATCH",
            self.path(resource, name, namespace, subresource),
            body=patch,
            content_type="application/merge-patch+json",
        )

    def delete(
        self, resource: str, name: str, propagation: str = "Background", namespace: str | None = None
    ) -> None:
        with contextlib.suppress(NotFound):
            self.api.request(
                "DELETE", self.path(resource, name, namespace), body={"propagationPolicy": propagation}
            )

    def requests_by(self, user: str) -> Counter[str]:
        """What ``user`` asked of the API server in this namespace, as ``verb resource[/sub]``
        counts, from its audit log (which records ServiceAccounts' requests only)."""
        time.sleep(1.5)  # the audit log is written in batches of up to a second
        counts: Counter[str] = Counter()
        for event in self.plane.audit_events():
            ref = event.get("objectRef") or {}
            if event.get("user", {}).get("username") == user and ref.get("namespace") == self.namespace:
                counts[f"{event['verb']} {ref.get('resource')}"
                       + (f"/{ref['subresource']}" if ref.get("subresource") else "")] += 1
        return counts

    def events(self, involved: str | None = None) -> list[dict[str, Any]]:
        events = self.objects("events")
        return [e for e in events if involved is None or e["involvedObject"].get("name") == involved]

    # --- workflows, jobs and pods -------------------------------------------------------------

    def status(self, name: str) -> dict[str, Any]:
        return (self.get("workflows", name) or {}).get("status") or {}

    def wait_phase(self, name: str, phases: Iterable[str] = FINISHED, timeout: float = 60) -> dict[str, Any]:
        wanted = tuple(phases)
        wait_for(
            lambda: self.status(name).get("phase") in wanted,
            timeout=timeout,
            message=f"workflow {name} never reached {wanted}: {json.dumps(self.status(name))[:3000]}",
        )
        return self.status(name)

    def step_phase(self, workflow: str, step: str) -> str | None:
        return (self.status(workflow).get("steps") or {}).get(step, {}).get("phase")

    def jobs(self, workflow: str | None = None) -> list[dict[str, Any]]:
        return self.objects("jobs", labels={"stepflow.dev/workflow": workflow} if workflow else None)

    def finished_jobs(self, workflow: str, timeout: float = 30) -> list[dict[str, Any]]:
        """The workflow's Jobs once the Job controller has marked each finished. A step ends when
        its pod does, about a second before its Job says so; the Job stays the record."""
        def finished() -> list[dict[str, Any]] | None:
            jobs = self.jobs(workflow)
            done = all((j.get("status") or {}).get("completionTime") or any(
                c.get("type") == "Failed" and c.get("status") == "True"
                for c in (j.get("status") or {}).get("conditions") or ()) for j in jobs)
            return jobs if jobs and done else None

        return wait_for(finished, timeout=timeout, message=f"the Jobs of {workflow} never finished")

    def pods(self, job: str) -> list[dict[str, Any]]:
        return self.objects("pods", labels={"job-name": job})

    def release(self, job: str, exit_code: int = 0, message: str | None = None) -> None:
        """End a held step's running pod, as its container exiting would."""
        pods = wait_for(
            lambda: [p for p in self.pods(job) if p.get("status", {}).get("phase") == "Running"],
            message=f"no running pod of Job {job}",
        )
        annotations: dict[str, Any] = {ANNOTATION + "hold": None, ANNOTATION + "exit-code": str(exit_code)}
        if message is not None:
            annotations[ANNOTATION + "message"] = message
        for pod in pods:
            self.patch("pods", pod["metadata"]["name"], {"metadata": {"annotations": annotations}})

    def set_pod_log(self, pod: str, text: str) -> None:
        """What the log of one pod's step container says from now on: a kwok ``Logs`` object
        names its file, and kwok serves it instead of the log every other pod shows."""
        path = self.plane.workdir / "pod-logs" / f"{self.namespace}.{pod}.log"
        path.parent.mkdir(exist_ok=True)
        path.write_text(cri_log(text))
        self.plane.apply({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
            "metadata": {"name": pod, "namespace": self.namespace},
            "spec": {"logs": [{"containers": ["step"], "logsFile": str(path), "follow": False}]},
        })
        wait_for(lambda: self.kubectl("logs", pod, check=False) == text, message=f"kwok never served {path}")

    def stepflow(self, *args: str) -> str:
        """``stepflow ARGS -n <namespace>`` as a user runs it, with the admin kubeconfig."""
        result = subprocess.run(
            [sys.executable, "-m", "stepflow", *args, "-n", self.namespace],
            env={"KUBECONFIG": str(self.plane.kubeconfig), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, kubeconfig: Path | None = None
    ) -> str:
        return self.plane.kubectl(
            f"--namespace={self.namespace}", *args, check=check, input=input, kubeconfig=kubeconfig
        )


class StatusRecorder:
    """Watches the namespace's Workflows and keeps every status the API server ever stored, so
    that tests can check all of them, not only what a poll happened to catch."""

    def __init__(self, kube: Kube, check: Callable[[dict[str, Any]], list[str]]):
        self.kube = kube
        self.check = check
        self.problems: list[str] = []
        self.seen: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-recorder", daemon=True)

    def __enter__(self) -> StatusRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # The watch returns within its 2 s timeout and then sees the flag; waiting for that cost
        # every test about a second. What arrived is checked; the thread ends on its own.
        self._stop.set()
        self._thread.join(0.2)

    def _run(self) -> None:
        for event in watch_events(self.kube, "workflows", self._stop):
            self._handle(event)

    def _handle(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        if event["type"] in ("ADDED", "MODIFIED") and obj.get("status"):
            self.seen.append(obj)
            name = obj["metadata"]["name"]
            rv = obj["metadata"]["resourceVersion"]
            self.problems.extend(f"{name} rv {rv}: {p}" for p in self.check(obj))


def watch_events(kube: Kube, resource: str, stop: threading.Event,
                 field_selector: str = "") -> Iterator[dict[str, Any]]:
    """Every watch event of a resource in the namespace (or of those the field selector
    matches), the watch reopened from the last resourceVersion whenever it ends or breaks,
    until ``stop`` is set."""
    version = "0"
    while not stop.is_set():
        try:
            response = kube.api._open(
                "GET",
                kube.path(resource),
                {"watch": "true", "resourceVersion": version, "timeoutSeconds": 2,
                 **({"fieldSelector": field_selector} if field_selector else {})},
                None,
                "application/json",
                (5, 15),
            )
            buffer = b""
            for chunk in response.response.stream(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in filter(bytes.strip, lines):
                    event = json.loads(line)
                    if event["type"] == "ERROR":  # too old: list again from now
                        version = "0"
                        continue
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    yield event
                if stop.is_set():
                    return
        except Exception:  # a watch that ends or breaks is simply opened again
            time.sleep(0.05)
