"""What ``stepflow plan`` prints: the text table, and the speedup estimate every output shares.

A matrix written down (M1) is expanded in the plan already, so its copies are rows, each saying
whose copy it is and with which values; beyond ten copies of a step the table shows the first
nine and a row counting the rest (``-o json`` lists them all). A list from an output (M4) is
known only when the run reads it, so such a step is one row saying what it fans out over, and
it counts as one step in the estimate, as the estimate says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stepflow.fan_rows import COPY_ROWS, copies_text, fan_out_text, values_text
from stepflow.plan import Plan, critical_path
from stepflow.printable import printable
from stepflow.spec import FieldError, SpecError, Step
from stepflow.status import human_duration


def durations(plan: Plan, option: str | None) -> dict[str, float]:
    """Each step's estimatedSeconds, overridden step by step by --durations. A matrix step's
    name gives each of its copies that duration; a copy's own name, that copy's."""
    estimated = {s.name: s.estimated_seconds for s in plan.steps if s.estimated_seconds is not None}
    if option is None:
        return estimated
    if option.endswith(".json"):
        try:
            data = json.loads(Path(option).read_text())
        except (OSError, ValueError) as exc:
            raise SpecError([FieldError("--durations", str(exc))]) from None
    else:
        malformed = [item for item in option.split(",") if "=" not in item]
        if malformed:
            raise SpecError([FieldError("--durations", f"expected STEP=SECONDS, got {malformed[0]!r}")])
        data = dict(item.split("=", 1) for item in option.split(","))
    if not isinstance(data, dict):
        raise SpecError([FieldError("--durations", "the JSON file must hold an object of step: seconds")])
    given = {}
    for key, value in data.items():
        try:
            given[str(key)] = float(value)
        except (TypeError, ValueError):
            raise SpecError([FieldError("--durations", f"{key}: expected a number of seconds, "
                                                       f"got {value!r}")]) from None
    bad = sorted(name for name, seconds in given.items() if not 0 <= seconds < math.inf)
    if bad:
        raise SpecError([FieldError("--durations", f"must be finite and >= 0: {', '.join(bad)}")])
    unknown = sorted(set(given) - set(plan.step_by_name) - set(plan.matrices))
    if unknown:
        raise SpecError([FieldError("--durations", f"unknown step(s): {', '.join(unknown)}")])
    spread = {copy: given[name] for name, (_, copies) in plan.matrices.items() if name in given
              for copy in copies}
    # A step --durations does not mention keeps its estimate; a copy named keeps its own.
    return {**estimated, **spread, **{k: v for k, v in given.items() if k in plan.step_by_name}}


def estimate(plan: Plan, durations: dict[str, float]) -> dict[str, Any]:
    """The sum of the steps' durations against the critical path. Copies are steps; a step whose
    list comes from an output is counted once (``fanOutAtRunTime``): its copies are not known."""
    sequential = sum(durations.get(s.name, 0.0) for s in plan.steps)
    ideal, chain = critical_path(plan, durations)
    return {
        "sequentialSeconds": sequential,
        "criticalPathSeconds": ideal,
        "criticalPath": chain,
        "idealSpeedup": round(sequential / ideal, 2) if ideal > 0 else None,
        "missing": collapsed(plan, [s.name for s in plan.steps if s.name not in durations]),
        "fanOutAtRunTime": [s.name for s in plan.steps if s.matrix],
    }


def collapsed(plan: Plan, names: Sequence[str], counted: bool = False) -> list[str]:
    """``names`` with every complete set of a matrix step's copies written as that step, once, in
    the place of its first copy (``deploy``, or with ``counted`` ``deploy (4 copies)``): a
    ``dependsOn`` on a 256-copy step lists 256 names otherwise."""
    present = set(names)
    complete = {whole: copies for whole, (_, copies) in plan.matrices.items() if present.issuperset(copies)}
    whole_of = {copy: whole for whole, copies in complete.items() for copy in copies}
    result = []
    for name in names:
        whole = whole_of.get(name)
        if whole is None:
            result.append(name)
        elif name == complete[whole][0]:
            result.append(f"{whole} ({copies_text(len(complete[whole]))})" if counted else whole)
    return result


def print_plan_text(plan: Plan, durations: dict[str, float]) -> None:
    console = Console()
    copies = sum(len(c) for _, c in plan.matrices.values())
    title = f"plan of {plan.spec.name}: {len(plan.steps)} steps in {len(plan.groups)} groups"
    if copies:
        title += f" ({copies} of them copies of {len(plan.matrices)} matrix step(s))"
    table = Table(title=title)
    fans_out = bool(plan.matrices) or any(s.matrix for s in plan.steps)
    for column in ("group", "step", "type", "waits for", *(["matrix"] if fans_out else [])):
        table.add_column(column)
    if durations:
        table.add_column("estimate", justify="right")
    for g, members in enumerate(plan.groups):
        rows = _rows(plan, members)
        for i, (name, more) in enumerate(rows):
            label = f"{g + 1} finally" if plan.step_by_name[members[0]].final else str(g + 1)
            row: list[Any] = [label if i == 0 else ""]
            if more:
                row += [Text(f"… {more} more {'copy' if more == 1 else 'copies'} of {name} (-o json lists "
                             "them)", style="dim"),
                        "", "", *([""] if fans_out else []), *([""] if durations else [])]
                table.add_row(*row, end_section=i == len(rows) - 1)
                continue
            step = plan.step_by_name[name]
            row += [name, Text(printable(step.type)), Text(printable(_waits(plan, name, g)))]
            if fans_out:
                row.append(Text(printable(_fan_out(step))))
            if durations:
                row.append(human_duration(durations[name]) if name in durations else "?")
            table.add_row(*row, end_section=i == len(rows) - 1)
    console.print(table)
    spec = plan.spec
    console.print(f"maxConcurrency {spec.max_concurrency}, failurePolicy {spec.failure_policy}"
                  + (f", timeout {spec.timeout_seconds}s" if spec.timeout_seconds else ""))
    if durations:
        result = estimate(plan, durations)
        console.print(
            f"sequential {human_duration(result['sequentialSeconds'])}, critical path "
            f"{human_duration(result['criticalPathSeconds'])} ({' -> '.join(result['criticalPath'])}), "
            f"ideal speedup {result['idealSpeedup']}x (unlimited slots)")
        if result["missing"]:
            missing = collapsed(plan, [s.name for s in plan.steps if s.name not in durations], counted=True)
            console.print(f"[dim]no estimate for: {', '.join(missing)} (counted as 0)[/dim]")
        if result["fanOutAtRunTime"]:
            console.print(f"[dim]{', '.join(result['fanOutAtRunTime'])}: fans out when it runs, counted "
                          "here as one step[/dim]")


def _rows(plan: Plan, members: Sequence[str]) -> list[tuple[str, int]]:
    """A group's rows: (step, 0), or (matrix step, copies left out) after the copies shown."""
    rows = []
    for name in members:
        whole = plan.step_by_name[name].matrix_of
        copies = plan.matrices[whole][1] if whole in plan.matrices else ()
        if len(copies) <= COPY_ROWS:
            rows.append((name, 0))
            continue
        index = copies.index(name)
        if index < COPY_ROWS - 1:
            rows.append((name, 0))
        elif index == len(copies) - 1:
            rows.append((whole, len(copies) - COPY_ROWS + 1))
    return rows


def _waits(plan: Plan, name: str, g: int) -> str:
    step = plan.step_by_name[name]
    if plan.waits_for_main(name):
        waits = "every main step (finally)"
    elif step.depends_on is not None:
        waits = "dependsOn: " + (", ".join(collapsed(plan, step.depends_on, counted=True)) or "(nothing)")
    else:
        waits = f"group {g}" if g > 0 else "-"
    if step.when is not None:
        waits += f"; when {step.when}"
    if step.output_sources:
        waits += "; reads " + ", ".join(f"{p}.{o}" for _, p, o in step.output_sources)
    return waits


def _fan_out(step: Step) -> str:
    """A copy's step and values (M2), or what a step not yet expanded fans out over (M4)."""
    if step.matrix_of is not None:
        return f"copy of {step.matrix_of}: {values_text(step.matrix_values)}"
    return fan_out_text(step.matrix) if step.matrix else ""
