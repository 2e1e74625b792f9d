"""What ``stepflow run`` draws: the live view while it runs, the outcome table when it is over.

The live view reads the run's plan, where a matrix step's copies stand in its place (M2) once
expanded, so each copy is a row of its own, with its values; a step whose list comes from an
output is one row, marked with its source, until the run reads the list (M4). The outcome table
reads the status document, where a matrix step also has an entry of its own: that entry is a
row, its copies under it (see :func:`stepflow.fan_rows.status_lines`), and it is never counted
as a step that ran.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from stepflow.fan_rows import TIMES, copies_text, phase_counts, ran, source_text, status_lines, values_text
from stepflow.local import LocalRun
from stepflow.printable import printable
from stepflow.status import group_label, human_duration, outputs_text, parse_time, phase_label
from stepflow.timeline import PHASE_STYLES


def live_table(run: LocalRun, max_rows: int | None = None) -> Group:
    """Steps by group with phase, elapsed time, and an overall progress bar.

    With more steps than ``max_rows``, the rows that matter stay: every running and failed step
    first, then the next pending ones, then the latest finished; a line counts the rest.
    """
    now = run.clock()
    order = [(g, name) for g, members in enumerate(run.plan.groups) for name in members]
    shown = {name for _, name in order}
    if max_rows is not None and len(order) > max_rows:
        shown = _rows_worth_showing(run, [name for _, name in order], max(max_rows - 1, 1))
    table = Table(title=f"{run.plan.spec.name}", show_edge=False)
    for column in ("group", "step", "phase", "elapsed"):
        table.add_column(column)
    previous_group = None
    for g, name in order:
        if name not in shown:
            continue
        state = run.states[name]
        end = state.finished_at or now
        elapsed = human_duration(end - state.started_at) if state.started_at else ""
        phase = state.phase
        if run.decision is not None and name in run.decision.waiting and phase == "Pending":
            phase = f"Pending ({run.decision.waiting[name].reason})"
        table.add_row(str(g + 1) if g != previous_group else "", Text(printable(_live_label(run, name))),
                      Text(phase, style=PHASE_STYLES.get(state.phase, "")), elapsed)
        previous_group = g
    done = sum(1 for s in run.states.values() if s.phase not in ("Pending", "Running"))
    total = len(run.states)
    width = 30
    filled = int(width * done / total) if total else width
    bar = Text("█" * filled, style="green") + Text("░" * (width - filled), style="grey50")
    hidden = total - len(shown)
    note = [Text(f"... {hidden} more step(s) not shown", style="grey50")] if hidden else []
    return Group(table, *note, Text.assemble(bar, f" {done}/{total} steps, "
                                             f"{human_duration(now - (run.started_at or now))}"))


def _live_label(run: LocalRun, name: str) -> str:
    """``deploy-0 (REGION=eu)`` for a copy; before its list is read, a step marked with its
    source, ``build`` then a times sign and ``(list.services)``."""
    step = run.plan.step_by_name[name]
    if step.matrix_of is not None:
        return f"{name} ({values_text(step.matrix_values)})"
    return f"{name} {TIMES}({source_text(step.matrix)})" if step.matrix else name


def _rows_worth_showing(run: LocalRun, names: list[str], rows: int) -> set[str]:
    def rank(item: tuple[int, str]) -> tuple[int, int]:
        index, name = item
        state = run.states[name]
        if state.phase in ("Running", "Failed"):
            return 0, index
        if state.phase == "Pending":
            return 1, index
        return 2, -(state.finished_at or 0)  # the latest finished first

    return {name for _, name in sorted(enumerate(names), key=rank)[:rows]}


def summary_table(status: dict[str, Any], every_copy: bool = False) -> Table:
    """The run's outcome, one row per step. What a step wrote (its message, outputs, termination
    message) and what the file says are shown with their control characters escaped: a terminal
    would obey an escape sequence among them. A matrix step is a row saying how many copies it
    has, its copies under it (at most ten rows of them, but with ``every_copy``)."""
    table = Table(title=Text(printable(f"{status['phase']}: {status.get('message', '')}")), show_edge=False)
    for column in ("group", "step", "phase", "took", "detail"):
        table.add_column(column)
    for line in status_lines(status["steps"], every_copy):
        if line.kind == "more":
            table.add_row("", Text(line.label, style="dim"), Text(phase_counts(line.hidden), style="dim"), "",
                          Text("--all-copies lists them", style="dim"))
            continue
        entry = line.entry
        start, end = parse_time(entry.get("startedAt")), parse_time(entry.get("finishedAt"))
        took = human_duration(end - start) if start is not None and end is not None else ""
        detail = entry.get("message", "")
        if entry.get("exitCode") not in (None, 0) and f"code {entry['exitCode']}" not in detail:
            detail = f"exit code {entry['exitCode']}" + (f"; {detail}" if detail else "")
        if entry.get("outputs"):
            detail = f"outputs: {outputs_text(entry)}" + (f"; {detail}" if detail else "")
        if line.kind == "whole" and "copies" not in detail:  # its message counts them, but a skip's
            detail = copies_text(entry["copies"]) + (f"; {detail}" if detail else "")
        phase = Text(phase_label(entry), style=PHASE_STYLES.get(entry["phase"], ""))
        table.add_row(group_label(entry), Text(printable(line.label)), phase, took, Text(printable(detail)))
    return table


def speedup_line(status: dict[str, Any]) -> str:
    """Wall time against the sum of step times: the parallelism actually achieved. A matrix
    step's own entry spans its copies, so only the copies count."""
    wall = (parse_time(status.get("finishedAt")) or 0) - (parse_time(status.get("startedAt")) or 0)
    total = 0.0
    for _, entry in ran(status["steps"]):
        start, end = parse_time(entry.get("startedAt")), parse_time(entry.get("finishedAt"))
        if start is not None and end is not None:
            total += end - start
    speedup = f"{total / wall:.2f}x" if wall > 0 else "n/a"
    return (f"wall time {human_duration(wall)}, sum of step times {human_duration(total)}, "
            f"measured speedup {speedup}")
