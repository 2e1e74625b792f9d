"""Where a step of a chain spends its time (benchmarks/peers.py): every step but a chain's first,
cut into phases at the milestones that the API server's audit log records (peer_session.Window):

    the previous step's pod ended -> child created -> pod created -> pod bound -> pod Running -> pod ended

- child created: the controller's create of what it makes for a step (stepflow: a Job; Tekton:
  a TaskRun). Argo creates the pod itself: it has no child phase, and its "pod created" runs
  from the previous step's pod ended;
- pod created: the create of the step's pod (stepflow: by the Job controller; Tekton, Argo: by
  their controller);
- pod bound: the scheduler's create of the pod's ``pods/binding``;
- pod Running, pod ended: kwok's first and last writes of the pod's status.

A create counts from when the API server received it, kwok's writes from when they were stored
(as the reaction of benchmarks/peers.py), so a step's phases add up to the step: the previous
pod ended -> its pod ended. Their medians need not add up; their means do. Each phase but the
first holds both the API server's handling of the write that opened it and the next
component's reaction to it.

Steps follow the order in which their children were created, in each namespace (a chain's
steps run one after another). A pod is tied to its child by name: Argo's pod is the child,
Tekton's is named ``<taskrun>-pod``, the Job controller's ``<job>-<5 characters>`` and created
from the ``generateName`` ``<job>-``. A step whose milestones are not all found, or whose child
made more than one pod, is counted as unmatched and left out.
"""

from __future__ import annotations

from typing import Any

from peer_session import Window, percentile

MILESTONES = ("created", "bound", "running", "ended")
PHASES = (
    ("child", "the previous step's pod ended -> child created"),
    ("pod", "-> pod created"),
    ("bound", "-> pod bound (scheduler)"),
    ("running", "-> pod Running (kwok)"),
    ("ended", "-> pod ended (kwok)"),
)
TOTALS = (
    ("step", "p50_ms", "a step in all (previous pod ended -> pod ended), p50 (ms)"),
    ("step", "mean_ms", "a step in all, mean (ms)"),
)


def owner(key: str, children: list[str]) -> str | None:
    """The child whose pod ``key`` (a pod's name, or the ``generateName`` of its create) is:
    the child itself (Argo's pods), else the longest child name that it extends by ``-...``."""
    if key in children:
        return key
    found = [c for c in children if key.startswith(c + "-")]
    return max(found, key=len) if found else None


def step_phases(window: Window) -> tuple[list[dict[str, float | None]], int]:
    """Each step after a chain's first: its phases in ms (``None``: a phase its controller has
    not); and how many steps were left out, unmatched."""
    steps: list[dict[str, float | None]] = []
    unmatched = 0
    pod_is_child = window.child == "pods"
    for ns, children in window.children.items():
        names = [name for _, name in children]
        found: dict[str, dict[str, float]] = {name: {} for name in names}
        pods: dict[str, int] = dict.fromkeys(names, 0)
        for key, pod in window.pods.get(ns, {}).items():
            child = owner(key, names)
            if child is None:
                continue
            if not key.endswith("-"):  # a generateName, not a pod
                pods[child] += 1
            for milestone, t in pod.items():
                if milestone in MILESTONES:
                    found[child][milestone] = t
        for i in range(1, len(children)):
            previous, mine = found[names[i - 1]], found[names[i]]
            if pods[names[i]] != 1 or "ended" not in previous or any(m not in mine for m in MILESTONES):
                unmatched += 1
                continue
            ended, child_created = previous["ended"], children[i][0]
            ms = {"child": None if pod_is_child else child_created - ended,
                  "pod": mine["created"] - (ended if pod_is_child else child_created),
                  "bound": mine["bound"] - mine["created"],
                  "running": mine["running"] - mine["bound"],
                  "ended": mine["ended"] - mine["running"],
                  "step": mine["ended"] - ended}
            steps.append({k: None if v is None else v * 1000 for k, v in ms.items()})
    return steps, unmatched


def phases(window: Window) -> dict[str, Any]:
    """p50 and mean (ms) of each phase and of the whole step, over every step measured."""
    steps, unmatched = step_phases(window)
    result: dict[str, Any] = {"steps": len(steps), "unmatched": unmatched, "p50_ms": {}, "mean_ms": {}}
    for name in (*(p for p, _ in PHASES), "step"):
        values = [v for s in steps if (v := s[name]) is not None]
        result["p50_ms"][name] = percentile(values, 50) if values else None
        result["mean_ms"][name] = sum(values) / len(values) if values else None
    return result


def rows() -> list[tuple[str, tuple[str, ...], str]]:
    """The table's rows as benchmarks/peers.py reads them: (label, the path to the figure in a
    scenario's results, its format)."""
    return ([(f"{label}, p50 (ms)", ("phases", "p50_ms", name), "{:.1f}") for name, label in PHASES]
            + [(label, ("phases", measure, name), "{:.1f}") for name, measure, label in TOTALS]
            + [("steps measured", ("phases", "steps"), "{}"),
               ("steps unmatched, left out", ("phases", "unmatched"), "{}")])


NOTE = (
    "Where a step of the single chain goes: each step but the first, cut at what the audit log "
    "records, the previous step's pod ended (kwok's last write to its status) -> the step's child "
    "created (stepflow: the operator's create of its Job; Tekton: its controller's create of the "
    "TaskRun; Argo has no child: it creates the pod, so its whole reaction is in \"pod created\") "
    "-> the pod created (stepflow: by the Job controller; Tekton, Argo: by their controller) -> the "
    "pod bound (the scheduler's pods/binding) -> the pod Running (kwok's first write to its status) "
    "-> the pod ended (kwok's last). Creates count from when the API server received them, kwok's "
    "writes from when they were stored, so a step's phases add up to the step (their medians need "
    "not, their means do), and each phase but the first holds both the API server's handling of the "
    "write that opened it and the next component's reaction to it. Pods are tied to their child by "
    "name (benchmarks/peer_phases.py)."
)
