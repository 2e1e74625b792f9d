"""Pictures of a plan: Mermaid, DOT, and the graph model the web UI lays out.

All three draw the same nodes and edges (:func:`_edges`): a barrier goes through one join node
per group boundary and the finally steps through "every main step is over", so a wide group
followed by another draws in linear size. Steps are coloured by phase from
:mod:`stepflow.palette`, the palette the SVG timeline and the UI use too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.palette import PHASE_FILLS, STROKE, TEXT
from stepflow.plan import Plan
from stepflow.spec import Step

MAIN_DONE = "#main"  # the graph node "every main step is over", which finally steps wait for (X1)


def _edges(plan: Plan) -> list[tuple[str, str]]:
    """Graph edges; a barrier is drawn through one join node ``#g`` per group boundary."""
    edges: list[tuple[str, str]] = []
    needed_joins = {plan.group_of[s.name] - 1 for s in plan.steps if plan.waits_for_barrier(s.name)}
    for g in sorted(needed_joins):
        edges.extend((name, f"#{g}") for name in plan.groups[g])
    waiting_for_main = [s.name for s in plan.steps if plan.waits_for_main(s.name)]
    if waiting_for_main:  # X1: one join node, "every main step is over"
        edges.extend((name, MAIN_DONE) for name in plan.main_sinks)
        edges.extend((MAIN_DONE, name) for name in waiting_for_main)
    for step in plan.steps:
        if step.depends_on:
            edges.extend((d, step.name) for d in step.depends_on)
        elif plan.waits_for_barrier(step.name):
            edges.append((f"#{plan.group_of[step.name] - 1}", step.name))
    return edges


def _join_nodes(edges: list[tuple[str, str]]) -> list[str]:
    """The ``#g`` barrier and "every main step is over" nodes that ``_edges`` drew through."""
    return sorted({a for a, _ in edges if a.startswith("#")})


def _group_title(plan: Plan, g: int) -> str:
    """The label of group ``g``, counted from 1 in each part, as ``stepflow plan`` shows it."""
    main = plan.main_group_count if plan.main_group_count is not None else len(plan.groups)
    return f"group {g + 1}" if g < main else f"finally group {g - main + 1}"


def _mermaid_id(node: str) -> str:
    """Mermaid ids allow no '-'; DNS labels have no '_', so the mapping stays one-to-one."""
    return f"j_{node[1:]}" if node.startswith("#") else "s_" + node.replace("-", "_")


def to_mermaid(plan: Plan, phases: Mapping[str, str] | None = None) -> str:
    """A Mermaid flowchart, groups as subgraphs; ``phases`` (step -> phase) colours the steps."""
    edges = _edges(plan)
    lines = ["flowchart TD"]
    for g, members in enumerate(plan.groups):
        lines.append(f'  subgraph group{g + 1}["{_group_title(plan, g)}"]')
        lines.extend(f'    {_mermaid_id(n)}["{n}"]' for n in members)
        lines.append("  end")
    joins = _join_nodes(edges)
    lines.extend(f"  {_mermaid_id(j)}(( ))" for j in joins)
    lines.extend(f"  {_mermaid_id(a)} --> {_mermaid_id(b)}" for a, b in edges)
    if phases:
        lines.extend(f"  classDef {phase} fill:{fill},stroke:{STROKE},color:{TEXT}"
                     for phase, fill in PHASE_FILLS.items())
        lines.extend(f"  class {_mermaid_id(name)} {phase}"
                     for name, phase in phases.items() if phase in PHASE_FILLS)
    return "\n".join(lines) + "\n"


def to_dot(plan: Plan, phases: Mapping[str, str] | None = None) -> str:
    """A Graphviz digraph, groups as dashed clusters; ``phases`` (step -> phase) fills the steps."""
    edges = _edges(plan)
    lines = [f'digraph "{plan.spec.name}" {{', "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for g, members in enumerate(plan.groups):
        lines.append(f'  subgraph cluster_{g + 1} {{ label="{_group_title(plan, g)}"; style=dashed;')
        for name in members:
            fill = PHASE_FILLS.get((phases or {}).get(name, ""), "")
            style = (f', style="rounded,filled", fillcolor="{fill}", fontcolor="{TEXT}", color="{STROKE}"'
                     if fill else "")
            lines.append(f'    "{name}" [label="{name}"{style}];')
        lines.append("  }")
    joins = _join_nodes(edges)
    lines.extend(f'  "{j}" [shape=point, label=""];' for j in joins)
    lines.extend(f'  "{a}" -> "{b}";' for a, b in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _what(plan: Plan, name: str) -> dict[str, Any]:
    """A step's type and params (T3), for the step panel: part of the spec, not of the status."""
    step = plan.step_by_name[name]
    return {k: v for k, v in (("type", step.type), ("params", dict(step.params))) if v}


def graph_model(plan: Plan) -> dict[str, Any]:
    """The graph as data for the web UI: the same nodes and edges as ``to_dot``, but a matrix
    step's copies drawn as one node, the box the page opens (M6).

    Columns are ordered slots for a layered layout: group ``g`` is column ``2g`` and the join
    nodes after it (its barrier ``#g``, or "every main step is over") sit in column ``2g + 1``,
    so that the groups read left to right as the plan runs them.
    """
    whole_of = {copy: whole for whole, (_, names) in plan.matrices.items() for copy in names}
    edges = _collapsed(_edges(plan), whole_of)
    main = plan.main_group_count if plan.main_group_count is not None else len(plan.groups)
    nodes: list[dict[str, Any]] = []
    for g, members in enumerate(plan.groups):
        for name in members:
            whole = whole_of.get(name)
            if whole is None:
                nodes.append({"id": name, "column": 2 * g, **_what(plan, name),
                              **_fan_out(plan.step_by_name[name])})
            elif name == plan.matrices[whole][1][0]:  # the box stands where its first copy is
                nodes.append({"id": whole, "column": 2 * g, **_what(plan, name), **_box(plan, whole)})
    joins = _join_nodes(edges)
    for join in joins:
        after = main - 1 if join == MAIN_DONE else int(join[1:])
        nodes.append({"id": join, "column": 2 * after + 1, "join": True})
    groups = [{"column": 2 * g, "title": _group_title(plan, g), "finally": g >= main}
              for g in range(len(plan.groups))]
    return {"groups": groups, "nodes": nodes, "edges": edges}


def _collapsed(edges: list[tuple[str, str]], whole_of: Mapping[str, str]) -> list[tuple[str, str]]:
    """Edges with each copy replaced by its matrix step, once: the copies share every edge."""
    if not whole_of:
        return edges
    return list(dict.fromkeys((whole_of.get(a, a), whole_of.get(b, b)) for a, b in edges))


def _box(plan: Plan, whole: str) -> dict[str, Any]:
    """A matrix step's node: its matrix as written, and each copy's name and values, which the
    page lists when the box is opened."""
    step, names = plan.matrices[whole]
    return {"matrix": {a.name: a.as_written() for a in step.matrix},
            "copies": [{"id": n, "matrix": dict(plan.step_by_name[n].matrix_values)} for n in names]}


def _fan_out(step: Step) -> dict[str, Any]:
    """M6: a step whose list comes from an output is one node until the run reads that list,
    marked with where the list will come from."""
    if not step.matrix:
        return {}
    parts = [f"output {a.source[1]} of {a.source[0]}" if a.source else f"{a.name} ({len(a.values or ())})"
             for a in step.matrix]
    return {"matrix": {a.name: a.as_written() for a in step.matrix},
            "fanOut": "fans out over " + " and ".join(parts)}
