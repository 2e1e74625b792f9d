"""The Workflow CRD for tests: the real one from deploy/crds when it exists, else a minimal one.

The minimal CRD accepts any spec and status (preserve-unknown-fields), so tests of the emulator
and early operator tests do not depend on the schema that another engineer is still writing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_CRD_FILE = REPO / "deploy" / "crds" / "workflows.stepflow.dev.yaml"
STEPPOOL_CRD_FILE = REPO / "deploy" / "crds" / "steppools.stepflow.dev.yaml"

_OPEN_OBJECT = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

MINIMAL_WORKFLOW_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "workflows.stepflow.dev"},
    "spec": {
        "group": "stepflow.dev",
        "scope": "Namespaced",
        "names": {"plural": "workflows", "singular": "workflow", "kind": "Workflow",
                  "listKind": "WorkflowList", "shortNames": ["swf"]},
        "versions": [{
            "name": "v1alpha1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": _OPEN_OBJECT, "status": _OPEN_OBJECT}}},
            "additionalPrinterColumns": [
                {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        }],
    },
}


@functools.lru_cache(maxsize=4)
def _parse(path: Path, mtime: float) -> dict[str, Any] | None:
    """Parsing the real CRD takes ~0.1 s; a test session parses each version once."""
    for document in yaml.safe_load_all(path.read_text()):
        if document and document.get("kind") == "CustomResourceDefinition":
            return document
    return None


def workflow_crd(prefer_file: bool = True) -> dict[str, Any]:
    """The repository's Workflow CRD if present and parseable, else the minimal one.
    Treat the result as read-only: it is shared between calls."""
    if prefer_file and WORKFLOW_CRD_FILE.exists():
        document = _parse(WORKFLOW_CRD_FILE, WORKFLOW_CRD_FILE.stat().st_mtime)
        if document is not None:
            return document
    return MINIMAL_WORKFLOW_CRD


def steppool_crd() -> dict[str, Any]:
    """The repository's StepPool CRD (R2), which the operator watches."""
    document = _parse(STEPPOOL_CRD_FILE, STEPPOOL_CRD_FILE.stat().st_mtime)
    assert document is not None, STEPPOOL_CRD_FILE
    return document


def stepflow_crds() -> list[dict[str, Any]]:
    """What deploy/ installs: the Workflow and StepPool CRDs."""
    return [workflow_crd(), steppool_crd()]
