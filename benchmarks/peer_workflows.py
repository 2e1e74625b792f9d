"""The same workflows written for stepflow, Argo Workflows and Tekton Pipelines (benchmarks/peers.py).

Every step is a container that runs ``true`` (kwok ends its pod at once: tests/kube/stages.yaml
for a Job's pod, tests/kube/peer-stages.yaml for an Argo or Tekton pod). The shapes:

- ``chain(n)``: n steps, each after the previous one;
- ``five``: a DAG of five, [a b] -> c -> [d e];
- ``fan_out(n, cap)``: n copies of one step, at most ``cap`` at once. stepflow: 4 matrix steps of
  n/4 copies that run in parallel (its matrix stops at 256 copies a step), ``maxConcurrency``;
  Argo: ``withSequence`` and the workflow's ``parallelism``; Tekton: one ``matrix`` of n values
  (its default limit of 256 combinations raised, tests/kube/peers.py) and no cap, which Tekton
  has no per-run setting for;
- ``one``: a single step.

Argo's templates declare no outputs (so no executor result is awaited); Tekton's Tasks are
written inline (``pipelineSpec``/``taskSpec``) and use ``command``, so Tekton never asks a
registry for an image's entrypoint.
"""

from __future__ import annotations

from typing import Any

IMAGE = "alpine:3.20"
COMMAND = ["true"]


def _values(n: int) -> list[str]:
    return [f"i{i:04d}" for i in range(n)]


class Stepflow:
    group, version, plural = "stepflow.dev", "v1alpha1", "workflows"
    child = "jobs"  # what the controller creates for a step

    @staticmethod
    def _doc(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
                "spec": {"defaults": {"image": IMAGE}, **spec, "steps": steps}}

    def chain(self, name: str, n: int) -> dict[str, Any]:
        return self._doc(name, [{"name": f"s{i:03d}", "script": "true"} for i in range(n)])

    def five(self, name: str) -> dict[str, Any]:
        steps = [{"name": s, "script": "true", **({"parallel": True} if s != "c" else {})} for s in "abcde"]
        return self._doc(name, steps)

    def fan_out(self, name: str, n: int, cap: int) -> dict[str, Any]:
        part = n // 4
        steps = [{"name": f"part{k}", "script": "true", "parallel": True,
                  "matrix": {"item": _values(part)}} for k in range(4)]
        return self._doc(name, steps, maxConcurrency=cap)

    def one(self, name: str) -> dict[str, Any]:
        return self._doc(name, [{"name": "only", "script": "true"}])

    @staticmethod
    def finished(obj: dict[str, Any]) -> str | None:
        phase = (obj.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None


class Argo:
    group, version, plural = "argoproj.io", "v1alpha1", "workflows"
    child = "pods"

    @staticmethod
    def _doc(name: str, main: dict[str, Any], **spec: Any) -> dict[str, Any]:
        step = {"name": "step", "container": {"image": IMAGE, "command": COMMAND}}
        return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
                "spec": {"entrypoint": "main", **spec, "templates": [{"name": "main", **main}, step]}}

    def chain(self, name: str, n: int) -> dict[str, Any]:
        return self._doc(name, {"steps": [[{"name": f"s{i:03d}", "template": "step"}] for i in range(n)]})

    def five(self, name: str) -> dict[str, Any]:
        after = {"c": ["a", "b"], "d": ["c"], "e": ["c"]}
        tasks = [{"name": s, "template": "step", **({"dependencies": after[s]} if s in after else {})}
                 for s in "abcde"]
        return self._doc(name, {"dag": {"tasks": tasks}})

    def fan_out(self, name: str, n: int, cap: int) -> dict[str, Any]:
        each = {"name": "each", "template": "step", "withSequence": {"count": str(n)}}
        return self._doc(name, {"steps": [[each]]}, parallelism=cap)

    def one(self, name: str) -> dict[str, Any]:
        return self._doc(name, {"steps": [[{"name": "only", "template": "step"}]]})

    @staticmethod
    def finished(obj: dict[str, Any]) -> str | None:
        phase = (obj.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed", "Error") else None


class Tekton:
    group, version, plural = "tekton.dev", "v1", "pipelineruns"
    child = "taskruns"

    @staticmethod
    def _task(name: str, after: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"steps": [{"name": "main", "image": IMAGE, "command": COMMAND}]}
        if "matrix" in extra:
            spec["params"] = [{"name": "item", "type": "string"}]
        return {"name": name, **({"runAfter": after} if after else {}), **extra, "taskSpec": spec}

    @staticmethod
    def _doc(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": name},
                "spec": {"pipelineSpec": {"tasks": tasks}}}

    def chain(self, name: str, n: int) -> dict[str, Any]:
        return self._doc(name, [self._task(f"s{i:03d}", [f"s{i - 1:03d}"] if i else None) for i in range(n)])

    def five(self, name: str) -> dict[str, Any]:
        after = {"c": ["a", "b"], "d": ["c"], "e": ["c"]}
        return self._doc(name, [self._task(s, after.get(s)) for s in "abcde"])

    def fan_out(self, name: str, n: int, cap: int) -> dict[str, Any]:
        del cap  # Tekton has no per-run cap: every TaskRun of the matrix is created at once
        matrix = {"params": [{"name": "item", "value": _values(n)}]}
        return self._doc(name, [self._task("each", matrix=matrix)])

    def one(self, name: str) -> dict[str, Any]:
        return self._doc(name, [self._task("only")])

    @staticmethod
    def finished(obj: dict[str, Any]) -> str | None:
        for condition in (obj.get("status") or {}).get("conditions") or ():
            if condition.get("type") == "Succeeded" and condition.get("status") in ("True", "False"):
                return "Succeeded" if condition["status"] == "True" else f"Failed ({condition.get('reason')})"
        return None
