"""Pictures of a plan: Mermaid, DOT, and the graph model the web UI lays out.

All three draw the same nodes and edges (:func:`_edges`): a barrier goes through one join node
per group boundary and the finally steps through "every main step is over", so a wide group
followed by another draws in linear size. Steps are coloured by phase from
:mod:`stepflow.palette`, the palette the SVG timeline and the UI use too.

Fan-out (M6) in Mermaid and DOT: an expanded matrix step is a box (a subgraph, a cluster) in
its group, titled with its name and number of copies, holding its copies, each labelled with
its values. Beyond :data:`DRAWN_COPIES` copies the box holds the first five (with phases, the
failed and running ones first) and one node "… N more copies", which every edge of the copies
left out goes through, once: a 256-copy step draws seven nodes, and the picture stays readable
and its text a few kilobytes. A step whose list comes from an output is one node until the run
reads the list, labelled with its source: ``build`` and ``(list.services)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepflow.fan_rows import TIMES, source_text, values_text, worth_showing
from stepflow.palette import PHASE_FILLS, STROKE, TEXT
from stepflow.plan import Plan
from stepflow.spec import Step

MAIN_DONE = "#main"  # the graph node "every main step is over", which finally steps wait for (X1)
DRAWN_COPIES = 6  # a matrix step's box draws all its copies up to this many, else five and "… N more"
LABEL_VALUES = 24  # characters of a copy's value in its node's label


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
    """Mermaid ids allow no '-'; DNS labels have no '_', so the mapping stays one-to-one. A
    ``+deploy`` node (the copies of deploy not drawn) is ``m_deploy``, its box ``x_deploy``."""
    if node.startswith("#"):
        return f"j_{node[1:]}"
    prefix, name = ("m_", node[1:]) if node.startswith("+") else ("s_", node)
    return prefix + name.replace("-", "_")


@dataclass(frozen=True)
class _Drawing:
    """What Mermaid and DOT draw: the nodes of each group (a matrix step's as a box), their
    labels, and the edges, those of copies left out going through their box's "more" node."""

    groups: list[list[str | tuple[str, list[str]]]]  # a node, or (matrix step, its box's nodes)
    labels: dict[str, str]  # of every node drawn, and of no other
    edges: list[tuple[str, str]]
    joins: list[str]


def _drawing(plan: Plan, phases: Mapping[str, str] | None) -> _Drawing:
    drawn_as: dict[str, str] = {}  # a copy left out -> its box's "more" node
    labels: dict[str, str] = {}
    boxes: dict[str, list[str]] = {}
    for whole, (_, copies) in plan.matrices.items():
        shown = (list(copies) if len(copies) <= DRAWN_COPIES
                 else worth_showing(copies, phases or {}, DRAWN_COPIES - 1))
        boxes[whole] = shown
        if len(shown) < len(copies):
            drawn_as.update((c, f"+{whole}") for c in set(copies).difference(shown))
            labels[f"+{whole}"] = f"… {len(copies) - len(shown)} more copies"
            boxes[whole] = [*shown, f"+{whole}"]
    groups: list[list[str | tuple[str, list[str]]]] = []
    for members in plan.groups:
        items: list[str | tuple[str, list[str]]] = []
        for name in members:
            step = plan.step_by_name[name]
            if step.matrix_of in boxes:
                if name not in drawn_as:
                    labels[name] = f"{name}\n{values_text(step.matrix_values, LABEL_VALUES)}"
                if name == plan.matrices[step.matrix_of][1][0]:
                    items.append((step.matrix_of, boxes[step.matrix_of]))
            else:
                labels[name] = f"{name} {TIMES}({source_text(step.matrix)})" if step.matrix else name
                items.append(name)
        groups.append(items)
    edges = list(dict.fromkeys((drawn_as.get(a, a), drawn_as.get(b, b)) for a, b in _edges(plan)))
    return _Drawing(groups, labels, edges, _join_nodes(edges))


def _box_title(plan: Plan, whole: str) -> str:
    step, copies = plan.matrices[whole]
    return f"{whole} {TIMES}{len(copies)} ({f' {TIMES} '.join(a.name for a in step.matrix)})"


def _mermaid_label(text: str) -> str:
    """A label inside Mermaid's ``["..."]``: a value's quote may not end it early nor its ``<``
    open a tag (as entity codes), lines break as <br/>."""
    for char, code in (("#", "#35;"), ('"', "#34;"), ("<", "#60;"), (">", "#62;")):
        text = text.replace(char, code)
    return text.replace("\n", "<br/>")


def to_mermaid(plan: Plan, phases: Mapping[str, str] | None = None) -> str:
    """A Mermaid flowchart, groups as subgraphs; ``phases`` (step -> phase) colours the steps."""
    drawing = _drawing(plan, phases)
    lines = ["flowchart TD"]
    for g, items in enumerate(drawing.groups):
        lines.append(f'  subgraph group{g + 1}["{_group_title(plan, g)}"]')
        for item in items:
            if isinstance(item, str):
                lines.append(f'    {_mermaid_id(item)}["{_mermaid_label(drawing.labels[item])}"]')
                continue
            whole, nodes = item
            lines.append(f'    subgraph x_{whole.replace("-", "_")}["{_box_title(plan, whole)}"]')
            lines.extend(f'      {_mermaid_id(n)}["{_mermaid_label(drawing.labels[n])}"]' for n in nodes)
            lines.append("    end")
        lines.append("  end")
    lines.extend(f"  {_mermaid_id(j)}(( ))" for j in drawing.joins)
    lines.extend(f"  {_mermaid_id(a)} --> {_mermaid_id(b)}" for a, b in drawing.edges)
    if phases:
        lines.extend(f"  classDef {phase} fill:{fill},stroke:{STROKE},color:{TEXT}"
                     for phase, fill in PHASE_FILLS.items())
        lines.extend(f"  class {_mermaid_id(name)} {phase}"
                     for name, phase in phases.items() if phase in PHASE_FILLS and name in drawing.labels)
    return "\n".join(lines) + "\n"


def _dot_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_dot(plan: Plan, phases: Mapping[str, str] | None = None) -> str:
    """A Graphviz digraph, groups as dashed clusters; ``phases`` (step -> phase) fills the steps."""
    drawing = _drawing(plan, phases)

    def node(name: str, indent: str) -> str:
        fill = PHASE_FILLS.get((phases or {}).get(name, ""), "")
        style = (f', style="rounded,filled", fillcolor="{fill}", fontcolor="{TEXT}", color="{STROKE}"'
                 if fill else ', style="rounded,dashed"' if name.startswith("+") else "")
        return f'{indent}"{name}" [label="{_dot_label(drawing.labels[name])}"{style}];'

    lines = [f'digraph "{plan.spec.name}" {{', "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for g, items in enumerate(drawing.groups):
        lines.append(f'  subgraph cluster_{g + 1} {{ label="{_group_title(plan, g)}"; style=dashed;')
        for item in items:
            if isinstance(item, str):
                lines.append(node(item, "    "))
                continue
            whole, nodes = item
            title = _box_title(plan, whole)
            lines.append(f'    subgraph "cluster_x_{whole}" {{ label="{title}"; style=rounded;')
            lines.extend(node(n, "      ") for n in nodes)
            lines.append("    }")
        lines.append("  }")
    lines.extend(f'  "{j}" [shape=point, label=""];' for j in drawing.joins)
    lines.extend(f'  "{a}" -> "{b}";' for a, b in drawing.edges)
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
