"""Render a kustomization: ``kubectl kustomize`` when kubectl is on PATH, else a small renderer.

The Python renderer does only what deploy/ uses, and refuses anything else rather than render it
wrongly: ``resources`` (files and directories), ``namespace`` (set on namespaced objects,
Namespace objects renamed, ServiceAccount subjects of bindings completed, as kustomize does) and
``patches`` that are inline JSON 6902 operations aimed at a kind and name.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

# Kinds deploy/ uses that are cluster-scoped; kustomize knows the same list for built-in kinds.
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "PriorityClass", "StorageClass", "ValidatingWebhookConfiguration",
                  "MutatingWebhookConfiguration"}
SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources", "patches"}


def render(directory: Path, *, use_kubectl: bool | None = None) -> list[dict[str, Any]]:
    """The objects a kustomization directory produces."""
    kubectl = shutil.which("kubectl")
    if use_kubectl is None:
        use_kubectl = kubectl is not None
    if use_kubectl:
        if kubectl is None:
            raise RuntimeError("kubectl is not on PATH")
        out = subprocess.run([kubectl, "kustomize", str(directory)], check=True,
                             capture_output=True, text=True, timeout=60).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]
    return render_python(directory)


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render_python(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_KEYS
    if unknown:
        raise NotImplementedError(f"{directory}: the small renderer does not do {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for entry in kustomization.get("resources") or ():
        path = (directory / entry).resolve()
        objects += render_python(path) if path.is_dir() else load_documents(path)
    objects = copy.deepcopy(objects)
    if namespace := kustomization.get("namespace"):
        for obj in objects:
            set_namespace(obj, namespace)
    for patch in kustomization.get("patches") or ():
        apply_patch(objects, patch)
    return objects


def set_namespace(obj: dict[str, Any], namespace: str) -> None:
    kind = obj.get("kind")
    if kind == "Namespace":
        obj["metadata"]["name"] = namespace
    elif kind not in CLUSTER_SCOPED:
        obj["metadata"]["namespace"] = namespace
    if kind in ("RoleBinding", "ClusterRoleBinding"):
        for subject in obj.get("subjects") or ():
            if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
                subject["namespace"] = namespace


def apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    if set(patch) - {"target", "patch"}:
        raise NotImplementedError(f"patch fields {sorted(set(patch) - {'target', 'patch'})}")
    target = patch["target"]
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise NotImplementedError("only JSON 6902 patches (a list of operations)")
    matched = [obj for obj in objects
               if obj.get("kind") == target.get("kind")
               and obj["metadata"].get("name") == target.get("name")]
    if not matched:
        raise ValueError(f"patch target {target} matches nothing")
    for obj in matched:
        for op in operations:
            json_patch(obj, op)


def json_patch(doc: dict[str, Any], op: dict[str, Any]) -> None:
    """One RFC 6902 operation: add, replace or remove."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~")
                      for part in op["path"].lstrip("/").split("/")]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) and last != "-" else last
    kind = op["op"]
    if kind == "remove":
        del node[key]
    elif kind == "replace":
        if key not in (range(len(node)) if isinstance(node, list) else node):
            raise KeyError(f"replace: {op['path']} does not exist")  # as RFC 6902 requires
        node[key] = op["value"]
    elif kind == "add":
        if isinstance(node, list):
            node.insert(len(node) if key == "-" else key, op["value"])
        else:
            node[key] = op["value"]
    else:
        raise NotImplementedError(f"JSON patch op {kind!r}")
