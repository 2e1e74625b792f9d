"""What waits for what: ``dependsOn`` references (D2), the waits-for graph and its cycle check.

A step waits for its ``dependsOn`` list (D1) or for the whole previous group (G5). Barriers are
kept as ``#g`` nodes meaning "group g is done" rather than expanded into every pair of steps, so
the graph, its topological order and its cycle check stay linear in a 5,000-wide group. Apart
from :mod:`stepflow.plan`, because the data-flow checks (:mod:`stepflow.dataflow`) walk the same
graph and the plan runs them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from stepflow.spec import FieldError, Step


def reference_errors(steps: tuple[Step, ...], other: Iterable[Step] = ()) -> list[FieldError]:
    """D2: every dependsOn entry names another, existing step of its own list, once (X2)."""
    known = {s.name for s in steps}
    elsewhere = {s.name: s for s in other}
    errors: list[FieldError] = []
    for step in steps:
        seen: set[str] = set()
        for i, target in enumerate(step.depends_on or ()):
            path = f"{step.path}.dependsOn[{i}]"
            if target == step.name:
                errors.append(FieldError(path, f'step "{step.name}" depends on itself'))
            elif target in elsewhere and step.final:
                errors.append(FieldError(path, f'finally step "{step.name}" depends on main step '
                                               f'"{target}"; a finally step\'s dependsOn names finally '
                                               "steps only (every main step is over before it starts)"))
            elif target in elsewhere:
                errors.append(FieldError(path, f'step "{step.name}" depends on finally step "{target}", '
                                               "which runs only after every main step is over"))
            elif target not in known:
                hint = close_match(target, known)
                errors.append(FieldError(path, f'step "{step.name}" depends on unknown step '
                                               f'"{target}"{hint}'))
            elif target in seen:
                errors.append(FieldError(path, f'step "{step.name}" lists "{target}" twice'))
            seen.add(target)
    return errors


def close_match(name: str, known: set[str]) -> str:
    """A "did you mean" for a misspelt step name, or ""."""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
    return f' (did you mean "{match[0]}"?)' if match else ""


def find_cycle(steps: tuple[Step, ...], groups: tuple[tuple[str, ...], ...]) -> list[str] | None:
    """Return one cycle as a list of nodes (first == last), or None.

    Nodes are step names and ``#g`` virtual nodes meaning "group g is done", so
    barrier edges (G5) take part in the check without a quadratic blow-up.
    """
    return _dfs_cycle(wait_edges(steps, groups))


def wait_edges(steps: Iterable[Step], groups: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, ...]]:
    """'waits for' edges over steps and ``#g`` group-done nodes."""
    group_of = {name: g for g, members in enumerate(groups) for name in members}
    edges: dict[str, tuple[str, ...]] = {}
    for step in steps:
        if step.depends_on is not None:
            edges[step.name] = step.depends_on
        elif group_of[step.name] > 0:
            edges[step.name] = (f"#{group_of[step.name] - 1}",)
        else:
            edges[step.name] = ()
    for g, members in enumerate(groups):
        edges[f"#{g}"] = members
    return edges


def post_order(edges: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Nodes after everything they wait for; assumes no cycle (checked before planning)."""
    done: set[str] = set()
    order: list[str] = []
    for root in edges:
        if root in done:
            continue
        done.add(root)
        stack = [(root, iter(edges[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                order.append(node)
            elif child not in done:
                done.add(child)
                stack.append((child, iter(edges[child])))
    return order


def _dfs_cycle(edges: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """An iterative depth-first search, so that a chain of 10,000 steps does not hit Python's
    recursion limit."""
    done: set[str] = set()
    for root in edges:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root: 0}
        iterators = [iter(edges.get(root, ()))]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                node = path.pop()
                del on_path[node]
                done.add(node)
                iterators.pop()
            elif nxt in on_path:
                return [*path[on_path[nxt]:], nxt]
            elif nxt not in done:
                on_path[nxt] = len(path)
                path.append(nxt)
                iterators.append(iter(edges.get(nxt, ())))
    return None


def describe_cycle(cycle: list[str], groups: tuple[tuple[str, ...], ...]) -> str:
    """Render a cycle readably: 'a -> b -> (group 2 barrier) -> a'."""
    parts = []
    for node in cycle:
        if node.startswith("#"):
            parts.append(f"(end of group {int(node[1:]) + 1})")
        else:
            parts.append(f'"{node}"')
    return " waits for ".join(parts)


def cycle_errors(steps: tuple[Step, ...], groups: tuple[tuple[str, ...], ...]) -> list[FieldError]:
    """D2: no step may wait for itself, through dependsOn and barriers; one cycle is shown. A
    reference that is an error of its own (unknown, itself, the other list) takes no part."""
    edges = wait_edges(steps, groups)
    cycle = _dfs_cycle({node: tuple(t for t in waits if t in edges and t != node)
                        for node, waits in edges.items()})
    if cycle is None:
        return []
    # Point at a dependsOn the user can edit: barrier edges only go back a group, so every
    # cycle has at least one step with dependsOn on it.
    on_cycle = {n for n in cycle if not n.startswith("#")}
    path = next(s.path for s in steps if s.name in on_cycle and s.depends_on is not None)
    return [FieldError(f"{path}.dependsOn",
                       f"dependency cycle: {describe_cycle(cycle, groups)}")]

