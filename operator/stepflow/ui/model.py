"""What the pages show, computed from Workflow objects: no I/O, so the tests need no server.

Phases, labels, times and the graph come from the modules the CLI uses (``status``,
``timeline``, ``graph``), so the browser and the terminal never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from stepflow.graph import graph_model
from stepflow.matrix import expand
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError
from stepflow.status import expansions_from_status, group_label, parse_time, phase_label
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
    "matrixOf",  # M2: a copy names its step, and has its values
    "matrix",
    "copies",  # M2: a matrix step's own entry, the phase of the whole
)
# How a matrix step's box counts its copies, in this order: "6 copies: 4 ✓ 1 ✗ 1 running"
COPY_PHASES = {"Succeeded": "✓", "Failed": "✗", "Running": "running", "Pending": "pending",
               "Suspended": "suspended", "Cancelled": "cancelled", "Skipped": "skipped"}


def key_of(obj: Mapping[str, Any]) -> Key:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the workflow list; ages and durations are computed by the page, which ticks."""
    meta, status = obj["metadata"], obj.get("status") or {}
    # A matrix step's own entry is not counted: its copies are, as in status.progress (M6).
    steps = {name: entry for name, entry in (status.get("steps") or {}).items() if "copies" not in entry}
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
    """Each step's panel and Gantt bar; ``start``/``end`` are seconds on the timeline's axis.

    A matrix step has a view of its own, its box, which counts its copies by phase, so that a
    copy's change sends the box's new count along with the copy (M6).
    """
    steps = status.get("steps") or {}
    rows, _ = timeline_rows(status)
    phases: dict[str, list[str]] = {}
    for entry in steps.values():
        if entry.get("matrixOf"):
            phases.setdefault(entry["matrixOf"], []).append(entry.get("phase", "Pending"))
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
        if "copies" in entry:
            view["copiesLabel"] = copies_label(entry["copies"], phases.get(row.name, ()))
        elif entry.get("matrixOf") and row.name[len(entry["matrixOf"]) + 1:].isdigit():
            view["copyIndex"] = int(row.name[len(entry["matrixOf"]) + 1:])
        views[row.name] = view
    return views


def copies_label(count: int, phases: Iterable[str]) -> str:
    """What a matrix step's box says of its copies: "6 copies: 4 ✓ 1 ✗ 1 running"."""
    counts = Counter(phases)
    parts = [f"{counts[p]} {mark}" for p, mark in COPY_PHASES.items() if counts[p]]
    parts += [f"{n} {p.lower()}" for p, n in counts.items() if p not in COPY_PHASES]
    noun = "copy" if count == 1 else "copies"
    return f"{count} {noun}: {' '.join(parts)}" if parts else f"{count} {noun}"


def graph(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's graph, or the spec's errors: an invalid workflow still gets a page.

    A list from an output (M4) is known once the run has read it: the expansions recorded in
    status turn such a step into its box of copies, as the run has them.
    """
    try:
        plan = compile_workflow({k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in obj},
                                Catalog.kept(obj.get("status")))  # the types its run resolved (T5)
    except SpecError as exc:
        return {"groups": [], "nodes": [], "edges": [], "errors": [str(e) for e in exc.errors]}
    return graph_model(expand(plan, expansions_from_status(obj.get("status"))))


def expansion_key(status: Mapping[str, Any] | None, model: Mapping[str, Any]) -> tuple[int, ...]:
    """How many copies the run has recorded for each step of the graph whose list comes from an
    output: when this changes (a step fanned out mid-run), the graph is drawn again; nothing
    else of a run changes the graph."""
    waiting = [n["id"] for n in model["nodes"]
               if any(isinstance(axis, Mapping) for axis in (n.get("matrix") or {}).values())]
    if not waiting:
        return ()
    found = expansions_from_status(status)
    return tuple(len(found.get(name, ())) for name in waiting)


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
