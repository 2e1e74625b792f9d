"""Turn a validated spec into an execution plan: groups, prerequisites, graphs.

A step waits either for its ``dependsOn`` list (D1) or for the whole previous
group (the G5 barrier). Barriers are kept as "group g must be done" rather
than expanded into every pair of steps, so a 5,000-wide group followed by
another stays linear in memory and in the cycle check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from stepflow.capacity import Quantities, QuantityError, container_requests, format_quantity, parse_quantity
from stepflow.conditions import Condition, ConditionSyntaxError, compile_condition
from stepflow.spec import (
    FieldError,
    SpecError,
    Step,
    WorkflowSpec,
    read_documents,
    read_workflow,
    step_output_source,
)

MAIN_DONE = "#main"  # the graph node "every main step is over", which finally steps wait for (X1)


@dataclass(frozen=True)
class Plan:
    """The immutable schedule skeleton the engine works from.

    ``groups`` lists the main groups, then the finally groups (X4). The engine schedules the
    two lists as two parts, :attr:`parts`, each a plan of its own with its own group numbers.
    """

    spec: WorkflowSpec
    groups: tuple[tuple[str, ...], ...]
    group_of: Mapping[str, int]
    conditions: Mapping[str, Condition] = field(default_factory=dict)  # step -> compiled ``when``
    main_group_count: int | None = None  # None: every group is a main group
    budget: Quantities | None = None  # R1: spec.maxResources, parsed; None: no budget
    requests: Mapping[str, Quantities] = field(default_factory=dict)  # R1: per step, with a budget

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.spec.all_steps

    @cached_property
    def step_by_name(self) -> dict[str, Step]:
        return {s.name: s for s in self.steps}

    @cached_property
    def pool_steps(self) -> dict[str, tuple[str, ...]]:
        """The StepPools its steps take slots of (R2), in document order, with their steps."""
        found: dict[str, list[str]] = {}
        for step in self.steps:
            if step.pool:
                found.setdefault(step.pool, []).append(step.name)
        return {pool: tuple(names) for pool, names in found.items()}

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(self.pool_steps)

    @cached_property
    def parts(self) -> tuple[Plan, Plan | None]:
        """(main steps, finally steps): the finally part runs under Continue, without the
        workflow's timeout (X3), once the main part is over."""
        if not self.spec.finally_steps:
            return self, None
        split = self.main_group_count if self.main_group_count is not None else len(self.groups)
        main_spec = replace(self.spec, finally_steps=())
        final_spec = replace(self.spec, steps=self.spec.finally_steps, finally_steps=(),
                             failure_policy="Continue", timeout_seconds=None)
        return (_part(self, main_spec, self.groups[:split]), _part(self, final_spec, self.groups[split:]))

    def waits_for_main(self, name: str) -> bool:
        """A finally step with no finally prerequisite: it waits for every main step (X1)."""
        step = self.step_by_name[name]
        if not step.final:
            return False
        final = self.parts[1]
        return not step.depends_on and final is not None and (
            step.depends_on is not None or final.group_of[name] == 0)

    def waits_for_barrier(self, name: str) -> bool:
        """True if the step waits for the previous group (no dependsOn, not in group 0)."""
        return (self.step_by_name[name].depends_on is None and self.group_of[name] > 0
                and not self.waits_for_main(name))

    def prerequisites(self, name: str) -> tuple[str, ...]:
        """Every step this one waits for, barrier expanded; for display and tests. A finally
        step that waits for the main part lists the main steps nothing else waits for."""
        step = self.step_by_name[name]
        if self.waits_for_main(name):
            return self.main_sinks
        if step.depends_on is not None:
            return step.depends_on
        group = self.group_of[name]
        return self.groups[group - 1] if group > 0 else ()

    @cached_property
    def main_sinks(self) -> tuple[str, ...]:
        """The main steps no main step waits for: the last ones to end in a normal run."""
        main = self.parts[0]
        waited = {d for s in main.steps for d in s.depends_on or ()}
        for g in range(1, len(main.groups)):
            if main.barrier_members(g):
                waited.update(main.groups[g - 1])
        return tuple(s.name for s in main.steps if s.name not in waited)

    @cached_property
    def _depends_on_dependents(self) -> dict[str, tuple[str, ...]]:
        result: dict[str, list[str]] = {}
        for step in self.steps:
            for prerequisite in step.depends_on or ():
                result.setdefault(prerequisite, []).append(step.name)
        return {k: tuple(v) for k, v in result.items()}

    def waiting_on_step(self, name: str) -> tuple[str, ...]:
        """Steps whose ``dependsOn`` names this one (barrier waits not included)."""
        return self._depends_on_dependents.get(name, ())

    @cached_property
    def _barrier_members(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(n for n in members if self.step_by_name[n].depends_on is None)
                     for members in self.groups)

    def barrier_members(self, group: int) -> tuple[str, ...]:
        """The steps of ``group`` that wait for the whole previous group (no ``dependsOn``)."""
        return self._barrier_members[group] if group > 0 else ()

    @cached_property
    def _document_index(self) -> dict[str, int]:
        return {s.name: s.index for s in self.steps}

    def index_of(self, name: str) -> int:
        """The step's position in the document: the order ready steps get slots in (C1)."""
        return self._document_index[name]

    @cached_property
    def topological_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.topological_order)}

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Steps ordered so that every prerequisite comes before the steps waiting for it."""
        main, final = self.parts
        if final is not None:
            return main.topological_order + final.topological_order
        order = _post_order(_wait_edges(self.spec.steps, self.groups))
        return tuple(n for n in order if not n.startswith("#"))

    def as_json(self) -> dict[str, Any]:
        """The plan for ``stepflow plan -o json``. A step that waits for the whole previous
        group says ``waitsForGroup`` rather than listing its members: written out, ten groups
        of 1,000 made 9 million names (a 4.9 s, 100 MB answer)."""
        steps = []
        for s in self.steps:
            entry: dict[str, Any] = {"name": s.name, "group": self.group_of[s.name]}
            if self.waits_for_barrier(s.name):
                entry["waitsForGroup"] = self.group_of[s.name] - 1
            elif self.waits_for_main(s.name):
                entry["waitsForMainSteps"] = True
            else:
                entry["prerequisites"] = list(self.prerequisites(s.name))
            entry["dependsOn"] = None if s.depends_on is None else list(s.depends_on)
            if s.final:
                entry["finally"] = True
            if s.when is not None:
                entry["when"] = s.when
            if s.outputs:
                entry["outputs"] = list(s.outputs)
            if s.output_sources:
                entry["reads"] = [{"env": var, "step": step, "output": output}
                                  for var, step, output in s.output_sources]
            steps.append(entry)
        main_groups = self.main_group_count if self.main_group_count is not None else len(self.groups)
        return {"name": self.spec.name, "groups": [list(g) for g in self.groups],
                "mainGroups": main_groups, "steps": steps}


def _part(whole: Plan, spec: WorkflowSpec, groups: tuple[tuple[str, ...], ...]) -> Plan:
    group_of = {name: g for g, members in enumerate(groups) for name in members}
    return Plan(spec=spec, groups=groups, group_of=group_of, conditions=whole.conditions,
                budget=whole.budget, requests=whole.requests)


# --- groups (G1-G4) and their errors (G6) ----------------------------------------------------

def _kind(step: Step) -> tuple[str, int]:
    """G1: numbered, parallel or sequential, with the number for numbered steps."""
    if step.parallel_group >= 1:
        return "numbered", step.parallel_group
    if step.parallel:
        return "parallel", 0
    return "sequential", 0


def group_steps(steps: Iterable[Step]) -> tuple[tuple[str, ...], ...]:
    """Split steps into groups per G2-G4, in document order."""
    groups: list[list[str]] = []
    previous: tuple[str, int] | None = None
    for step in steps:
        kind = _kind(step)
        joins = kind == previous and kind[0] != "sequential"
        if joins:
            groups[-1].append(step.name)
        else:
            groups.append([step.name])
        previous = kind
    return tuple(tuple(g) for g in groups)


def group_errors(steps: tuple[Step, ...]) -> list[FieldError]:
    """G6: numbers must be non-negative, adjacent, increasing, and not combined with parallel: false."""
    errors: list[FieldError] = []
    for step in steps:
        path = f"{step.path}.parallelGroup"
        if step.parallel_group < 0:
            errors.append(FieldError(path, f'step "{step.name}" has parallelGroup '
                                           f"{step.parallel_group}; it must be >= 0 (0 means unset)"))
        elif step.parallel_group >= 1 and step.parallel is False:
            errors.append(FieldError(
                f"{step.path}.parallel",
                f'step "{step.name}" sets parallel: false together with parallelGroup '
                f"{step.parallel_group}; drop one of them"))
    errors.extend(_number_order_errors(steps))
    return errors


def _number_order_errors(steps: tuple[Step, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    last_of: dict[int, Step] = {}
    highest: Step | None = None
    previous: Step | None = None
    for step in steps:
        number = step.parallel_group
        if number >= 1:
            path = f"{step.path}.parallelGroup"
            earlier = last_of.get(number)
            if earlier is not None and previous is not earlier:
                between = [s.name for s in steps[earlier.position + 1 : step.position]]
                errors.append(FieldError(path, (
                    f'parallelGroup {number} is used by steps "{earlier.name}" and "{step.name}", '
                    f"which are not adjacent (between them: {_names(between)}); "
                    "steps of one group must stand together")))
            elif highest is not None and number < highest.parallel_group:
                errors.append(FieldError(path, (
                    f'step "{step.name}" has parallelGroup {number} after step "{highest.name}" '
                    f"with parallelGroup {highest.parallel_group}; numbers must increase "
                    "down the document")))
            last_of[number] = step
            if highest is None or number > highest.parallel_group:
                highest = step
        previous = step
    return errors


def _names(names: Iterable[str], limit: int = 5) -> str:
    names = list(names)
    shown = ", ".join(f'"{n}"' for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- dependsOn (D1, D2) ----------------------------------------------------------------------

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
                hint = _close_match(target, known)
                errors.append(FieldError(path, f'step "{step.name}" depends on unknown step '
                                               f'"{target}"{hint}'))
            elif target in seen:
                errors.append(FieldError(path, f'step "{step.name}" lists "{target}" twice'))
            seen.add(target)
    return errors


def _close_match(name: str, known: set[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
    return f' (did you mean "{match[0]}"?)' if match else ""


def find_cycle(steps: tuple[Step, ...], groups: tuple[tuple[str, ...], ...]) -> list[str] | None:
    """Return one cycle as a list of nodes (first == last), or None.

    Nodes are step names and ``#g`` virtual nodes meaning "group g is done", so
    barrier edges (G5) take part in the check without a quadratic blow-up.
    """
    return _dfs_cycle(_wait_edges(steps, groups))


def _wait_edges(steps: Iterable[Step], groups: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, ...]]:
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


def _post_order(edges: Mapping[str, tuple[str, ...]]) -> list[str]:
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
    cycle = find_cycle(steps, groups)
    if cycle is None:
        return []
    # Point at a dependsOn the user can edit: barrier edges only go back a group, so every
    # cycle has at least one step with dependsOn on it.
    on_cycle = {n for n in cycle if not n.startswith("#")}
    path = next(s.path for s in steps if s.name in on_cycle and s.depends_on is not None)
    return [FieldError(f"{path}.dependsOn",
                       f"dependency cycle: {describe_cycle(cycle, groups)}")]


# --- entry points ----------------------------------------------------------------------------

def plan_errors(spec: WorkflowSpec, with_data: bool = True) -> list[FieldError]:
    """Cross-step checks: G6 groups, then D2 references and cycles when names are sound, each
    for spec.steps and spec.finally apart (X2); then O4 and W2 once the graph is sound (they
    need it: "a prerequisite" is defined by it)."""
    errors = group_errors(spec.steps) + group_errors(spec.finally_steps)
    names = [s.name for s in spec.all_steps]
    if not (all(names) and len(set(names)) == len(names)):
        return errors
    graph_sound = True
    for steps, other in ((spec.steps, spec.finally_steps), (spec.finally_steps, spec.steps)):
        references = reference_errors(steps, other)
        errors.extend(references)
        cycles = [] if references else cycle_errors(steps, group_steps(steps))
        errors.extend(cycles)
        graph_sound = graph_sound and not references and not cycles
    if graph_sound and not errors and with_data:
        errors.extend(data_errors(_skeleton(spec))[0])
    return errors


def _skeleton(spec: WorkflowSpec) -> Plan:
    """The groups of both lists, without compiled conditions."""
    main_groups = group_steps(spec.steps)
    groups = main_groups + group_steps(spec.finally_steps)
    group_of = {name: g for g, members in enumerate(groups) for name in members}
    budget, requests, _ = resource_budget(spec)
    return Plan(spec=spec, groups=groups, group_of=group_of,
                main_group_count=len(main_groups) if spec.finally_steps else None,
                budget=budget, requests=requests)


def build_plan(spec: WorkflowSpec) -> Plan:
    """Plan a spec whose structure passed :func:`plan_errors`'s group and reference checks;
    raises SpecError with every O4 and W2 error, and compiles each ``when`` once."""
    plan = _skeleton(spec)
    errors, conditions = data_errors(plan)
    if errors:
        raise SpecError(errors)
    return replace(plan, conditions=conditions) if conditions else plan


# --- resources (R1) ---------------------------------------------------------------------------

def resource_budget(spec: WorkflowSpec) -> tuple[dict[str, Decimal] | None, dict[str, Quantities],
                                                 list[FieldError]]:
    """R1: spec.maxResources parsed, each step's requests, and the errors: a quantity that does
    not parse, and a step that asks for more than the whole budget, since it could never start.
    Without a budget, resources are the cluster's business (:mod:`stepflow.cluster_checks`)."""
    if spec.max_resources is None:
        return None, {}, []
    errors: dict[str, FieldError] = {}  # by path: a bad default is reported once, not per step
    budget = {}
    for name, value in spec.max_resources.items():
        try:
            budget[name] = parse_quantity(value)
        except QuantityError as exc:
            errors.setdefault(f"spec.maxResources.{name}", FieldError(f"spec.maxResources.{name}", str(exc)))
    requests: dict[str, Quantities] = {}
    for step in spec.all_steps:
        path = f"{step.path}.resources" if step.resources else "spec.defaults.resources"
        try:
            need = container_requests(step.resources or spec.defaults.resources)
        except QuantityError as exc:
            where = f"{path}.{exc.field}"
            errors.setdefault(where, FieldError(where, str(exc)))
            continue
        requests[step.name] = need
        for resource, amount in need.items():
            if resource in budget and amount > budget[resource]:
                errors.setdefault(path, FieldError(path, (
                    f'step "{step.name}" requests {resource} {format_quantity(amount)}, more than '
                    f"spec.maxResources allows ({format_quantity(budget[resource])}), so it could "
                    "never start")))
    return budget, requests, list(errors.values())


# --- outputs (O4) and conditions (W2) --------------------------------------------------------

def data_errors(plan: Plan) -> tuple[list[FieldError], dict[str, Condition]]:
    """Every ``stepOutput`` and ``when`` must read declared outputs of prerequisites only, so the
    values they read are final; returns the errors and the compiled conditions."""
    readers = [s for s in plan.steps if s.when is not None or s.output_sources]
    if not readers:
        return [], {}
    before = _Ancestry(plan)
    errors: list[FieldError] = []
    conditions: dict[str, Condition] = {}
    for step in readers:
        for i, var in enumerate(step.env):
            source = step_output_source(var)
            if source is not None:
                path = f"{step.path}.env[{i}].valueFrom.stepOutput"
                errors.extend(_read_error(plan, before, step, *source, path, "reads"))
                errors.extend(_substitution_errors(step, var["name"]))
        if step.when is None:
            continue
        try:
            condition = compile_condition(step.when)
        except ConditionSyntaxError as exc:
            errors.append(FieldError(f"{step.path}.when", f'step "{step.name}": when {exc}'))
            continue
        found = [e for ref in condition.references
                 for e in _read_error(plan, before, step, ref.step, ref.output, f"{step.path}.when",
                                      "reads (in when)")]
        errors.extend(dict.fromkeys(found))
        conditions[step.name] = condition
    return errors, conditions


def _read_error(plan: Plan, before: _Ancestry, step: Step, source: str, output: str | None, path: str,
                verb: str) -> list[FieldError]:
    label = f'step "{step.name}"'
    producer = plan.step_by_name.get(source)
    if producer is None:
        hint = _close_match(source, set(plan.step_by_name))
        return [FieldError(path, f'{label} {verb} unknown step "{source}"{hint}')]
    if not before.precedes(source, step.name):
        why = "a finally step: it runs after the main steps" if producer.final and not step.final else (
            "which is not a prerequisite of it (through dependsOn or the group barriers)")
        return [FieldError(path, f'{label} {verb} step "{source}", {why}; only a prerequisite '
                                 "is sure to have finished")]
    if output is not None and output not in producer.outputs:
        declared = ", ".join(producer.outputs) or "none"
        return [FieldError(path, f'{label} {verb} output "{output}" of step "{source}", which does not '
                                 f"declare it (its outputs: {declared})")]
    return []


def _substitution_errors(step: Step, variable: str) -> list[FieldError]:
    """O3: Kubernetes expands ``$(VAR)`` in command, args and script before the shell sees them,
    so an output read that way would be pasted into the command line: shell injection."""
    reference = re.compile(rf"(?<!\$)\$\({re.escape(variable)}\)")
    places = [("script", step.script or "")] + [(f"command[{i}]", c) for i, c in enumerate(step.command)]
    places += [(f"args[{i}]", a) for i, a in enumerate(step.args)]
    message = (f'step "{step.name}" uses $({variable}), which would paste a step\'s output into the '
               f'command; read it as "${variable}" in the shell instead')
    return [FieldError(f"{step.path}.{where}", message) for where, text in places if reference.search(text)]


class _Ancestry:
    """Which steps are sure to have finished before a step starts: its prerequisites,
    transitively, through dependsOn and barriers; for a finally step also every main step.
    Ancestor sets are bitsets built in one topological pass, linear in edges times n/64."""

    def __init__(self, plan: Plan):
        self._bits: dict[str, int] = {}
        self._bit: dict[str, int] = {}
        main, final = plan.parts
        every_main = 0
        for part in (main, final):
            if part is None:
                continue
            edges = _wait_edges(part.steps, part.groups)
            for node in _post_order(edges):
                waits = edges[node]
                bits = 0
                for upstream in waits:
                    bits |= self._bits[upstream] | self._bit.get(upstream, 0)
                if not node.startswith("#"):
                    self._bit[node] = 1 << len(self._bit)
                    if part is final:
                        bits |= every_main
                self._bits[node] = bits
            if part is main:
                every_main = sum(self._bit.values())
            for g in range(len(part.groups)):
                del self._bits[f"#{g}"]  # group nodes are per part; the next part reuses the names

    def precedes(self, producer: str, consumer: str) -> bool:
        return bool(self._bits[consumer] & self._bit[producer])


def compile_workflow(doc: Any) -> Plan:
    """Validate a Workflow document completely (fields, cross-step rules, outputs and
    conditions) and plan it; every error found is reported at once."""
    spec, errors = read_workflow(doc)
    if spec is None or not spec.steps:
        raise SpecError(errors)
    structural = plan_errors(spec, with_data=False)
    errors = errors + structural + resource_budget(spec)[2]
    plan = _skeleton(spec)
    conditions: dict[str, Condition] = {}
    if not structural:
        data, conditions = data_errors(plan)
        errors += data
    if errors:
        raise SpecError(errors)
    return replace(plan, conditions=conditions) if conditions else plan


def load_plans(path: str | Path) -> list[Plan]:
    """Every Workflow in a file, planned; all errors of all documents in one SpecError."""
    docs = read_documents(path)
    plans, errors = [], []
    for number, doc in enumerate(docs, start=1):
        prefix = f"[document {number}] " if len(docs) > 1 else ""
        try:
            plans.append(compile_workflow(doc))
        except SpecError as exc:
            errors.extend(FieldError(prefix + e.path, e.message) for e in exc.errors)
    if errors:
        raise SpecError(errors)
    return plans


def load_plan(path: str | Path, name: str | None = None) -> Plan:
    """The one Workflow of a file, or the one called ``name`` in a file of several: the file
    is read and checked as ``validate`` reads it, whichever command asks."""
    plans = load_plans(path)
    if name is not None:
        chosen = [p for p in plans if p.spec.name == name]
        if not chosen:
            names = ", ".join(p.spec.name for p in plans)
            raise SpecError([FieldError("(file)", f'holds no Workflow "{name}" (it holds: {names})')])
        return chosen[0]
    if len(plans) != 1:
        names = ", ".join(p.spec.name for p in plans)
        raise SpecError([FieldError("(file)", f"holds {len(plans)} Workflows ({names}); choose one with "
                                              "--name")])
    return plans[0]


# --- estimates and graphs --------------------------------------------------------------------

def critical_path(plan: Plan, durations: Mapping[str, float]) -> tuple[float, list[str]]:
    """Longest chain of prerequisites by duration: the ideal wall time with unlimited slots."""
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    group_done: dict[int, tuple[float, str | None]] = {}
    # Topological, not document, order: a dependsOn may name a later step.
    for name in plan.topological_order:
        before = [(finish[p], p) for p in plan.step_by_name[name].depends_on or ()]
        if plan.waits_for_barrier(name):
            group = plan.group_of[name] - 1
            if group not in group_done:
                group_done[group] = max((finish[n], n) for n in plan.groups[group])
            before = [group_done[group]]
        start, previous = max(before, default=(0.0, None))
        finish[name] = start + durations.get(name, 0.0)
        via[name] = previous
    if not finish:
        return 0.0, []
    end = max(finish, key=finish.__getitem__)
    chain: list[str] = []
    node: str | None = end
    while node is not None:
        chain.append(node)
        node = via[node]
    return finish[end], chain[::-1]


PHASE_COLOURS = {
    "Pending": "#eeeeee", "Running": "#9ecbff", "Succeeded": "#a6e3a1",
    "Failed": "#f38ba8", "Skipped": "#d0d0d0", "Cancelled": "#fab387",
}


def _edges(plan: Plan) -> list[tuple[str, str]]:
    """Graph edges; a barrier is drawn through one join node ``#g`` per group boundary."""
    edges = []
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
    main = plan.main_group_count if plan.main_group_count is not None else len(plan.groups)
    return f"group {g + 1}" if g < main else f"finally group {g - main + 1}"


def _mermaid_id(node: str) -> str:
    """Mermaid ids allow no '-'; DNS labels have no '_', so the mapping stays one-to-one."""
    return f"j_{node[1:]}" if node.startswith("#") else "s_" + node.replace("-", "_")


def to_mermaid(plan: Plan, phases: Mapping[str, str] | None = None) -> str:
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
        lines.extend(f"  classDef {phase} fill:{colour},stroke:#555"
                     for phase, colour in PHASE_COLOURS.items())
        lines.extend(f"  class {_mermaid_id(name)} {phase}"
                     for name, phase in phases.items() if phase in PHASE_COLOURS)
    return "\n".join(lines) + "\n"


def to_dot(plan: Plan, phases: Mapping[str, str] | None = None) -> str:
    edges = _edges(plan)
    lines = [f'digraph "{plan.spec.name}" {{', "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for g, members in enumerate(plan.groups):
        lines.append(f'  subgraph cluster_{g + 1} {{ label="{_group_title(plan, g)}"; style=dashed;')
        for name in members:
            colour = PHASE_COLOURS.get((phases or {}).get(name, ""), "")
            style = f', style="rounded,filled", fillcolor="{colour}"' if colour else ""
            lines.append(f'    "{name}" [label="{name}"{style}];')
        lines.append("  }")
    joins = _join_nodes(edges)
    lines.extend(f'  "{j}" [shape=point, label=""];' for j in joins)
    lines.extend(f'  "{a}" -> "{b}";' for a, b in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_model(plan: Plan) -> dict[str, Any]:
    """The graph as data for the web UI: the same nodes and edges as ``to_dot``.

    Columns are ordered slots for a layered layout: group ``g`` is column ``2g`` and the join
    nodes after it (its barrier ``#g``, or "every main step is over") sit in column ``2g + 1``,
    so that the groups read left to right as the plan runs them.
    """
    edges = _edges(plan)
    main = plan.main_group_count if plan.main_group_count is not None else len(plan.groups)
    nodes: list[dict[str, Any]] = [
        {"id": name, "column": 2 * g} for g, members in enumerate(plan.groups) for name in members
    ]
    joins = _join_nodes(edges)
    for join in joins:
        after = main - 1 if join == MAIN_DONE else int(join[1:])
        nodes.append({"id": join, "column": 2 * after + 1, "join": True})
    groups = [{"column": 2 * g, "title": _group_title(plan, g), "finally": g >= main}
              for g in range(len(plan.groups))]
    return {"groups": groups, "nodes": nodes, "edges": edges}
