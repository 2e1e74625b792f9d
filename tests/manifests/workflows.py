"""Small Workflow documents for the manifest checks."""

from __future__ import annotations

import copy
from typing import Any


def step(name: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("script", "true")
    return {"name": name, **fields}


def workflow(*steps: dict[str, Any], status: dict[str, Any] | None = None,
             **spec: Any) -> dict[str, Any]:
    spec.setdefault("defaults", {"image": "alpine:3.20"})
    doc = {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow",
           "metadata": {"name": "wf", "namespace": "team-a", "generation": 1},
           "spec": {**spec, "steps": list(steps) or [step("a")]}}
    if status is not None:
        doc["status"] = status
    return doc


def numbered(*groups: int) -> dict[str, Any]:
    """Steps s0, s1, ... with these parallelGroup numbers; 0 leaves a step unnumbered."""
    return workflow(*(step(f"s{i}", **({"parallelGroup": g} if g else {}))
                      for i, g in enumerate(groups)))


def changed(doc: dict[str, Any], edit) -> dict[str, Any]:
    """A deep copy of ``doc`` after ``edit(copy)``."""
    new = copy.deepcopy(doc)
    edit(new)
    return new
