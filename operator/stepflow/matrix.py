"""Fan-out (M1-M6) in the plan: a matrix step replaced by its copies.

A copy is an ordinary step to everything downstream (the engine, both executors, status): it
takes the matrix step's place in its group, and a ``dependsOn`` on the matrix step waits for
every copy (M3). A list written down is expanded when the workflow is compiled; a list from an
output (M4) when the engine finds the step ready and says so (``Decision.expand``), the
executor then calling :func:`expand` with what the engine read. The whole step stays known to
the plan (``Plan.matrices``) so that its phase and outputs can be told (M3, M5).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from stepflow.matrix_spec import (
    MAX_COPIES,
    MAX_EXPANDED_STEPS,
    MAX_STEP_VALUES,
    MAX_WORKFLOW_VALUES,
    Axis,
    literal_count,
)
from stepflow.spec import FieldError, Step, WorkflowSpec

if TYPE_CHECKING:
    from stepflow.plan import Plan

Values = Mapping[str, str]  # one copy's: matrix name -> value


def combinations(axes: Sequence[Axis],
                 resolved: Mapping[str, Sequence[str]] | None = None) -> list[dict[str, str]]:
    """M1: the cartesian product, the first name varying slowest; ``resolved`` gives the lists
    that come from outputs."""
    lists = [a.values if a.values is not None else tuple((resolved or {})[a.name]) for a in axes]
    names = [a.name for a in axes]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]


def copy_name(step: str, index: int) -> str:
    return f"{step}-{index}"


def copies(step: Step, combos: Sequence[Values]) -> tuple[Step, ...]:
    """M2: copy ``i`` named ``<step>-<i>`` with its values; otherwise the step as written."""
    return tuple(replace(step, name=copy_name(step.name, i), matrix=(), matrix_of=step.name,
                         matrix_values=dict(values), copy_index=i)
                 for i, values in enumerate(combos))


def expand(plan: Plan, expansions: Mapping[str, Sequence[Values]]) -> Plan:
    """The plan with each step of ``expansions`` replaced by one copy per entry: in its group, in
    each ``dependsOn`` that names it, and under its condition and resource requests. One pass,
    however many steps are expanded."""
    expansions = {n: c for n, c in expansions.items() if c and plan.step_by_name.get(n, _NONE).matrix}
    if not expansions:
        return plan
    made = {name: copies(plan.step_by_name[name], combos) for name, combos in expansions.items()}
    names = {name: tuple(c.name for c in steps) for name, steps in made.items()}

    def swap(listed: Sequence[str]) -> tuple[str, ...]:
        return tuple(n for member in listed for n in names.get(member, (member,)))

    def place(steps: Sequence[Step]) -> list[Step]:
        placed: list[Step] = []
        for step in steps:
            if step.name in made:
                placed.extend(made[step.name])
            elif step.depends_on and not names.keys().isdisjoint(step.depends_on):
                placed.append(replace(step, depends_on=swap(step.depends_on)))
            else:
                placed.append(step)
        return placed

    main, final = place(plan.spec.steps), place(plan.spec.finally_steps)
    numbered = [s if s.index == i else replace(s, index=i) for i, s in enumerate(main + final)]
    spec = replace(plan.spec, steps=tuple(numbered[:len(main)]), finally_steps=tuple(numbered[len(main):]))
    groups = tuple(swap(g) for g in plan.groups)
    conditions, requests = dict(plan.conditions), dict(plan.requests)
    for table in (conditions, requests):
        for name in made:
            if name in table:
                table.update(dict.fromkeys(names[name], table.pop(name)))
    wholes = {name: (plan.step_by_name[name], names[name]) for name in made}
    return replace(plan, spec=spec, groups=groups, group_of={n: g for g, m in enumerate(groups) for n in m},
                   conditions=conditions, requests=requests, matrices={**plan.matrices, **wholes})


def as_written(plan: Plan) -> list[Step]:
    """The steps as the document has them: each matrix step once, in its first copy's place, so
    that a check of what a step says reports it once, not once per copy."""
    written = []
    for step in plan.steps:
        if step.matrix_of is None:
            written.append(step)
        elif step.copy_index == 0:
            written.append(plan.matrices[step.matrix_of][0])
    return written


def expand_written(plan: Plan) -> Plan:
    """Every matrix written down expanded (M1); those from outputs wait for the engine (M4)."""
    return expand(plan, {s.name: combinations(s.matrix) for s in plan.steps
                         if s.matrix and literal_count(s.matrix) is not None})


_NONE = Step(name="", index=-1)


def values_size(combos: Sequence[Values]) -> int:
    """What the copies' values take in status (M2), in characters."""
    return sum(len(k) + len(v) for values in combos for k, v in values.items())


def list_from_output(text: str) -> list[str] | str:
    """M4: the strings of a JSON array, or why the text is not one."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"is not JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(value, list):
        return f"holds a JSON {type(value).__name__.replace('dict', 'object')}, not an array of strings"
    for i, item in enumerate(value):
        if not isinstance(item, str):
            return f"holds a JSON array whose item {i} is not a string"
        if "\0" in item:
            return f"holds a JSON array whose item {i} contains a NUL byte, which no environment " \
                   "variable can carry"
    return value


def matrix_errors(spec: WorkflowSpec) -> list[FieldError]:
    """M1, M2: the bounds a matrix must keep, and names its copies would take."""
    fanned = [s for s in spec.all_steps if s.matrix]
    if not fanned:
        return []
    errors = []
    written = len(spec.all_steps) - len(fanned)
    expanded, size = written, 0
    for step in fanned:
        count = literal_count(step.matrix)
        expanded += count or 1
        errors += _step_errors(step, count)
        if count is not None and count <= MAX_COPIES:
            step_size = values_size(combinations(step.matrix))
            size += step_size
            if step_size > MAX_STEP_VALUES:
                errors.append(FieldError(f"{step.path}.matrix", (
                    f'step "{step.name}": its copies\' values take {step_size:,} characters, at most '
                    f"{MAX_STEP_VALUES:,}: status keeps each copy's values")))
    if size > MAX_WORKFLOW_VALUES:
        errors.append(FieldError("spec.steps", (
            f"the copies of its matrices take {size:,} characters of values, at most "
            f"{MAX_WORKFLOW_VALUES:,}: status keeps each copy's values")))
    if expanded > MAX_EXPANDED_STEPS:
        errors.append(FieldError("spec.steps", (
            f"makes {expanded:,} steps once its matrices are expanded; at most {MAX_EXPANDED_STEPS:,} "
            "are allowed in a workflow with a matrix")))
    errors += _clashes(spec, fanned)
    return errors


def _step_errors(step: Step, count: int | None) -> list[FieldError]:
    label, path = f'step "{step.name}"', f"{step.path}.matrix"
    errors = []
    if count is not None and count > MAX_COPIES:
        sizes = " x ".join(str(len(a.values or ())) for a in step.matrix)
        errors.append(FieldError(path, f"{label} makes {sizes} = {count:,} copies; at most {MAX_COPIES}"))
    longest = copy_name(step.name, min(count or MAX_COPIES, MAX_COPIES) - 1)
    if len(longest) > 63:
        errors.append(FieldError(f"{step.path}.name", (
            f'{label}: its copies are named like "{longest}", {len(longest)} characters; a step name '
            f"takes at most 63, so shorten the step's name to {63 - len(longest) + len(step.name)}")))
    env_names = {v["name"] for v in step.env}
    for axis in step.matrix:
        if axis.name in step.params:
            errors.append(FieldError(f"{path}.{axis.name}", f"{label}: {axis.name} is also a param (with); "
                                                            "each copy's value would replace it"))
        elif axis.name in env_names:
            errors.append(FieldError(f"{path}.{axis.name}", f"{label}: {axis.name} is also a variable of its "
                                                            "env; each copy sets it to its value"))
    return errors


def _clashes(spec: WorkflowSpec, fanned: Sequence[Step]) -> list[FieldError]:
    """M2: a step named like a copy of a matrix step (``deploy-3``) is invalid."""
    pattern = re.compile("(" + "|".join(re.escape(s.name) for s in fanned if s.name) + r")-\d+")
    errors = []
    for step in spec.all_steps:
        match = pattern.fullmatch(step.name) if step.name else None
        if match is not None:
            errors.append(FieldError(f"{step.path}.name", (
                f'step "{step.name}" is named like a copy of matrix step "{match.group(1)}"; rename it')))
    return errors
