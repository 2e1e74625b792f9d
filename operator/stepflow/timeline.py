"""Gantt chart of a run, drawn from a status document.

It reads only ``status`` (the CR's or a ``--report`` file), so a local run and
a cluster run draw the same chart. Layout is computed once
(:func:`timeline_rows`) and rendered as rich text or as SVG, whose fills are
:mod:`stepflow.palette`'s, as in the graphs and the UI.

A matrix step (M6) is drawn as a summary row, its name marked with its number of copies
(``deploy`` and a times sign, ``4``) and its bar a hollow bracket (``├────┤``; in SVG, an
outline) from its first copy's start to its last copy's end, so that it never reads as a step
of its own that ran; its copies' bars are under it. Beyond ten copies the chart shows the failed
and running ones and the first others, and a row counts the rest
(:func:`stepflow.fan_rows.status_lines`); ``every_copy`` (``--all-copies``) draws them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from rich.table import Table
from rich.text import Text

from stepflow.fan_rows import TIMES, Line, is_whole, phase_counts, status_lines
from stepflow.palette import PHASE_FILLS
from stepflow.printable import printable
from stepflow.status import group_label, human_duration, parse_time, phase_label

PHASE_STYLES = {
    "Succeeded": "green", "Failed": "red", "Running": "cyan", "Pending": "grey50",
    "Skipped": "grey50", "Cancelled": "yellow",
}


@dataclass(frozen=True)
class Row:
    name: str
    group: int
    phase: str
    start: float | None  # seconds after the run started
    end: float | None
    kept: bool = False  # ran in an earlier run and was kept (``rerun --failed``): no bar on this axis
    group_label: str = ""  # "3", or "5 finally" for a finally step
    phase_label: str = ""  # the phase, or "Skipped (condition)"
    kind: str = "step"  # M6: "whole" (a matrix step's summary), "copy", "more" (copies left out)
    label: str = ""  # the name as the chart prints it: "deploy \u00d74", "  deploy-0 (REGION=eu)"
    copies: int = 0  # a matrix step's summary: how many copies it has

    @property
    def shown_name(self) -> str:
        return self.label or self.name


def timeline_origin(status: Mapping[str, Any]) -> float | None:
    """The epoch second the axis starts at: the run's start, else its first step's.

    No start at all (an InvalidSpec workflow has only a finishedAt) means nothing ran, so there
    is no span to measure, rather than one from the epoch.
    """
    starts = [parse_time(e.get("startedAt")) for e in (status.get("steps") or {}).values()
              if e.get("startedAt")]
    return parse_time(status.get("startedAt")) or min(starts, default=None)


def timeline_rows(status: Mapping[str, Any], now: float | None = None,
                  every_copy: bool = True) -> tuple[list[Row], float]:
    """Rows in document order, times relative to the first start, and the total span.

    A matrix step's summary row comes right before its copies'. Every entry of
    ``status.steps`` has its row (the UI's Gantt reads them all) unless ``every_copy`` is
    False: then a 256-copy step keeps ten rows of copies, one of them counting the rest.
    """
    steps = status.get("steps") or {}
    origin = timeline_origin(status)
    lines = status_lines(steps, every_copy)
    if origin is None:
        return [_row(line, None, None, False) for line in lines], 0.0
    rows = []
    for line in lines:
        entry = line.entry
        start = parse_time(entry.get("startedAt"))
        end = parse_time(entry.get("finishedAt"))
        if start is not None and end is None:
            end = now if now is not None else start
        # A step kept by ``rerun --failed`` started and ended before this run did; drawn on this
        # run's axis its bar would start at a negative column and push the row out of the table.
        kept = start is not None and end is not None and start < origin and end < origin
        rows.append(_row(line, None if start is None else start - origin,
                         None if end is None else end - origin, kept))
    span = max((r.end for r in rows if r.end is not None and not r.kept), default=0.0)
    finished = parse_time(status.get("finishedAt"))
    if finished is not None:
        span = max(span, finished - origin)
    return rows, span


def _row(line: Line, start: float | None, end: float | None, kept: bool) -> Row:
    entry = line.entry
    if line.kind == "more":  # its counts by phase stand in the chart (_placeholder)
        return Row(line.name, 0, "", None, None, kind="more", label=line.label,
                   phase_label=phase_counts(line.hidden))
    label = f"{line.name} {TIMES}{entry['copies']}" if is_whole(entry) else line.label
    return Row(line.name, entry.get("group", 0), entry.get("phase", "Pending"), start, end, kept,
               group_label(entry), phase_label(entry), kind=line.kind, label=label,
               copies=entry["copies"] if is_whole(entry) else 0)


def bar_columns(row: Row, span: float, width: int) -> tuple[int, int] | None:
    """The [first, last) columns of a row's bar; at least one column for any step that ran.

    Both ends are rounded the same way, so a step that starts after another ended never shares
    a column with it (truncating the start but rounding the end drew sequential steps
    overlapping by a column), and the bar is clamped to the chart.
    """
    if row.start is None or row.kept:
        return None
    if span <= 0:
        return 0, 1
    first = min(max(round(row.start / span * width), 0), width - 1)
    last = max(first + 1, round((row.end if row.end is not None else row.start) / span * width))
    return first, min(last, width)


def chart_width(status: Mapping[str, Any], console_width: int, every_copy: bool = False) -> int:
    """Columns left for bars once names, group, phase and duration are shown.

    The step column is never narrower than its header ``step``: with shorter names the rows
    used to overflow the console and rich cut every bar short with an ellipsis.
    """
    rows, _ = timeline_rows(status, every_copy=every_copy)
    longest = max((len(printable(r.shown_name)) for r in rows), default=0)
    return max(console_width - max(longest, len("step")) - 34, 20)


def render_timeline(status: Mapping[str, Any], width: int = 50, now: float | None = None,
                    every_copy: bool = False) -> Table:
    """A rich table: step, group, phase, duration and a bar on a shared time axis."""
    rows, span = timeline_rows(status, now, every_copy)
    width = max(width, len(human_duration(span)) + 2)
    table = Table(title=f"timeline (total {human_duration(span)})", show_edge=False, pad_edge=False)
    for column in ("step", "group", "phase", "took"):
        table.add_column(column, no_wrap=True)
    table.add_column(f"0{' ' * (width - len(human_duration(span)) - 1)}{human_duration(span)}",
                     no_wrap=True)
    for row in rows:
        cols = bar_columns(row, span, width)
        style = PHASE_STYLES.get(row.phase, "white")
        if cols is None:
            bar = Text(f"{_placeholder(row)[:width]:<{width}}", style="dim")
        else:
            bar = Text(" " * cols[0]) + _bar(row, cols[1] - cols[0], style) + Text(" " * (width - cols[1]))
        took = human_duration(row.end - row.start) if row.start is not None and row.end else ""
        name = Text(printable(row.shown_name), style="dim" if row.kind == "more" else "")
        table.add_row(name, row.group_label, Text("" if row.kind == "more" else row.phase_label, style=style),
                      took, bar)
    if any(row.kind == "more" for row in rows):
        table.caption = "--all-copies draws every copy of a matrix step"
    return table


def _bar(row: Row, length: int, style: str) -> Text:
    """A step's solid bar; a matrix step's summary is a hollow bracket over its copies' bars."""
    if row.kind != "whole":
        return Text("█" * length, style=style)
    inner = "├" + "─" * (length - 2) + "┤" if length >= 2 else "│"
    return Text(inner, style=style)


def _placeholder(row: Row) -> str:
    """What stands in the chart for a row without a bar."""
    if row.kind == "more":
        return f"({row.phase_label})"
    return "(kept from an earlier run)" if row.kept else f"({(row.phase_label or row.phase).lower()})"


def timeline_svg(status: Mapping[str, Any], now: float | None = None, every_copy: bool = False) -> str:
    """The same chart as a standalone SVG file; the names column is as wide as its longest."""
    rows, span = timeline_rows(status, now, every_copy)
    chart_w, row_h, top = 600, 22, 30
    label_w = max(180, 8 + round(7.5 * max((len(r.shown_name) for r in rows), default=0)))
    height = top + row_h * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 20}" '
             f'height="{height}" font-family="monospace" font-size="12">',
             f'<text x="4" y="18">timeline, total {escape(human_duration(span))}</text>']
    for i, row in enumerate(rows):
        y = top + i * row_h
        nested = row.kind in ("copy", "more")  # under its matrix step, indented
        grey = ' fill="#888"' if row.kind == "more" else ""
        parts.append(f'<text x="{16 if nested else 4}" y="{y + 15}"{grey}>'
                     f"{escape(row.shown_name.strip())}</text>")
        if row.start is None or row.kept or span <= 0:
            parts.append(f'<text x="{label_w}" y="{y + 15}" fill="#888">{escape(_placeholder(row))}</text>')
            continue
        x = label_w + row.start / span * chart_w
        w = max(((row.end or row.start) - row.start) / span * chart_w, 2)
        fill = PHASE_FILLS.get(row.phase, "#888")
        if row.kind == "whole":  # an outline: the span of its copies, not a step that ran
            parts.append(f'<rect x="{x:.1f}" y="{y + 6}" width="{w:.1f}" height="{row_h - 12}" fill="none" '
                         f'stroke="{fill}" stroke-width="2"><title>{escape(row.name)}: {row.phase}, '
                         f"{row.copies} copies, from the first start to the last end</title></rect>")
            continue
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                     f'fill="{fill}"><title>{escape(row.name)}: {row.phase}</title></rect>')
    axis_y = top + row_h * len(rows) + 15
    parts.append(f'<text x="{label_w}" y="{axis_y}">0s</text>')
    parts.append(f'<text x="{label_w + chart_w - 40}" y="{axis_y}">{escape(human_duration(span))}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
