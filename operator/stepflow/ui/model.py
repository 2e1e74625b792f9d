"""What the pages show, computed from Workflow objects: no I/O, so the tests need no server.

Phases, labels, times and the graph come from the modules the CLI uses (``status``,
``timeline``, ``graph``), so the browser and the terminal never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.graph import graph_model
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError
from stepflow.status import group_label, parse_time, phase_label
from stepflow.step_types import Catalog
from stepflow.timeline import timeline_origin, timeline_rows

Key = tuple[str, str]  # (namespace, name)

STEP_FIELDS = (
    "reason",
    "message",
    "exitCode",
    "attempts",
    "jobName",
    "terminationMessage",
    "outputs",
    "startedAt",
    "finishedAt",
    "finally",
)


def key_of(obj: Mapping[str, Any]) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the workflow list; ages and durations are computed by the page, which ticks."""
    meta, status = obj["metadata"], obj.get("status") or {}
    steps = status.get("steps") or {}
    done = sum(1 for entry in steps.values() if entry.get("finishedAt"))
    return {
        "namespace": meta["namespace"],
        "name": meta["name"],
        "phase": status.get("phase", "Pending"),
        "progress": status.get("progress", ""),
        "done": done,
        "total": len(steps) or len((obj.get("spec") or {}).get("steps") or ()),
        "reason": status.get("reason", ""),
        "message": status.get("message", ""),
        "created": parse_time(meta.get("creationTimestamp")),
        "startedAt": parse_time(status.get("startedAt")),
        "finishedAt": parse_time(status.get("finishedAt")),
    }


def step_views(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each step's panel and Gantt bar; ``start``/``end`` are seconds on the timeline's axis."""
    steps = status.get("steps") or {}
    rows, _ = timeline_rows(status)
    views = {}
    for row in rows:
        entry = steps[row.name]
        view = {field: entry[field] for field in STEP_FIELDS if field in entry}
        running = entry.get("startedAt") and not entry.get("finishedAt")
        view.update(
            phase=row.phase,
            phaseLabel=phase_label(entry),
            group=row.group,
            groupLabel=group_label(entry),
            start=row.start,
            end=None if running else row.end,
            kept=row.kept,
            index=entry.get("index", 0),
        )
        views[row.name] = view
    return views


def graph(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's graph, or the spec's errors: an invalid workflow still gets a page."""
    try:
        plan = compile_workflow({k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj},
                                Catalog.kept(obj.get("status")))  # the types its run resolved (T5)
    except SpecError as exc:
        return {"groups": [], "nodes": [], "edges": [], "errors": [str(e) for e in exc.errors]}
    return graph_model(plan)


def header(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow-wide part of a page: its row and its time axis."""
    return {"summary": summary(obj), "origin": timeline_origin(obj.get("status") or {})}


def detail(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the workflow page draws."""
    return {
        **header(obj),
        "generation": obj["metadata"].get("generation"),
        "graph": graph(obj),
        "steps": step_views(obj.get("status") or {}),
    }


def changed_steps(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The step views that differ, so that an update redraws only the steps it touched."""
    return {name: view for name, view in after.items() if before.get(name) != view}
