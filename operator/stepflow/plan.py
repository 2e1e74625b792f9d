"""Turn a validated spec into an execution plan: groups, prerequisites, the critical path.

A step waits either for its ``dependsOn`` list (D1) or for the whole previous group (the G5
barrier). The checks of what waits for what (D2) live in :mod:`stepflow.waits`, those of what a
step reads (O4, W2) in :mod:`stepflow.dataflow`; :func:`compile_workflow` runs them all.
Pictures of a plan are :mod:`stepflow.graph`'s, reading files is :mod:`stepflow.workflow_files`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from typing import Any

from stepflow.capacity import Quantities, QuantityError, container_requests, format_quantity, parse_quantity
from stepflow.conditions import Condition
from stepflow.dataflow import data_errors
from stepflow.matrix import expand_written, matrix_errors
from stepflow.spec import FieldError, SpecError, Step, WorkflowSpec, read_workflow
from stepflow.step_types import Catalog, Resolution, StepType, TypeLookup, resolve
from stepflow.waits import cycle_errors, post_order, reference_errors, wait_edges


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
    step_types: Mapping[str, StepType] = field(default_factory=dict)  # T5: the types it resolved
    # M2: each expanded matrix step, as written, with its copies' names, which replace it above
    matrices: Mapping[str, tuple[Step, tuple[str, ...]]] = field(default_factory=dict)

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
        order = post_order(wait_edges(self.spec.steps, self.groups))
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
            if s.matrix_of is not None:
                entry.update(matrixOf=s.matrix_of, matrix=dict(s.matrix_values))
            elif s.matrix:
                entry["matrix"] = {a.name: a.as_written() for a in s.matrix}
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
                budget=whole.budget, requests=whole.requests, matrices=whole.matrices)


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


# --- resources (R1) ---------------------------------------------------------------------------

def resource_budget(spec: WorkflowSpec) -> tuple[dict[str, Decimal] | None, dict[str, Quantities],
                                                 list[FieldError]]:
    """R1: spec.maxResources parsed, each step's requests, and the errors: a quantity that does
    not parse, and a step that asks for more than the whole budget, since it could never start.
    Without a budget, resources are the cluster's business (:mod:`stepflow.cluster_refusals`)."""
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


# --- entry points ----------------------------------------------------------------------------

def names_sound(spec: WorkflowSpec) -> bool:
    """Every step has a name of its own: what the graph of waits is keyed by."""
    names = [s.name for s in spec.all_steps]
    return all(names) and len(set(names)) == len(names)


def plan_errors(spec: WorkflowSpec) -> list[FieldError]:
    """Cross-step checks of the structure, all in one pass: G6 groups, D2 references, and the
    cycles among the references that hold, each for spec.steps and spec.finally apart (X2). A
    cycle is looked for only when names are sound (a duplicate name makes false ones). The
    data-flow checks (O4, W2) need a sound structure: "a prerequisite" is defined by it."""
    errors = group_errors(spec.steps) + group_errors(spec.finally_steps)
    for steps, other in ((spec.steps, spec.finally_steps), (spec.finally_steps, spec.steps)):
        errors.extend(reference_errors(steps, other))
        if names_sound(spec):
            errors.extend(cycle_errors(steps, group_steps(steps)))
    return errors


def compile_workflow(doc: Any, types: TypeLookup | None = None) -> Plan:
    """Validate a Workflow document completely (its step types resolved from ``types``, fields,
    cross-step rules, outputs and conditions) and plan it; every error found is reported at once."""
    resolution = resolve(doc, types or Catalog())
    spec, errors = read_workflow(resolution.document)
    errors = [*resolution.errors, *missing_type_errors(resolution), *_without_missing(errors, resolution)]
    if spec is None or not spec.steps:
        raise SpecError(errors)
    structural = plan_errors(spec)
    errors = errors + structural + resource_budget(spec)[2] + matrix_errors(spec)
    plan = _skeleton(spec)
    conditions: dict[str, Condition] = {}
    if not structural and names_sound(spec):
        data, conditions = data_errors(plan)
        errors += data
    if errors:
        raise SpecError(errors)
    return expand_written(replace(plan, conditions=conditions, step_types=resolution.used))


def missing_type_errors(resolution: Resolution) -> list[FieldError]:
    """T4, locally: a type that a step needs and that was found nowhere."""
    return [FieldError(f"{path}.type", f'step type "{name}" is neither a StepType nor a ClusterStepType '
                                       "given (stepflow validate|plan|run --types PATH, or a type "
                                       "document in the workflow's file); the step has nothing to run "
                                       "without it")
            for name, paths in resolution.missing.items() for path in paths]


def _without_missing(errors: Iterable[FieldError], resolution: Resolution) -> list[FieldError]:
    """A step whose type is missing has nothing to run: said once, by the missing type."""
    paths = {path for paths in resolution.missing.values() for path in paths}
    return [e for e in errors if not (e.path in paths and "has nothing to run" in e.message)]


def _skeleton(spec: WorkflowSpec) -> Plan:
    """The groups of both lists, without compiled conditions."""
    main_groups = group_steps(spec.steps)
    groups = main_groups + group_steps(spec.finally_steps)
    group_of = {name: g for g, members in enumerate(groups) for name in members}
    budget, requests, _ = resource_budget(spec)
    return Plan(spec=spec, groups=groups, group_of=group_of,
                main_group_count=len(main_groups) if spec.finally_steps else None,
                budget=budget, requests=requests)



# --- estimates -------------------------------------------------------------------------------

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

