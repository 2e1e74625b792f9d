"""Gantt chart of a run, drawn from a status document.

It reads only ``status`` (the CR's or a ``--report`` file), so a local run and
a cluster run draw the same chart. Layout is computed once
(:func:`timeline_rows`) and rendered as rich text or as SVG, whose fills are
:mod:`stepflow.palette`'s, as in the graphs and the UI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from rich.table import Table
from rich.text import Text

from stepflow.palette import PHASE_FILLS
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


def timeline_origin(status: Mapping[str, Any]) -> float | None:
    """The epoch second the axis starts at: the run's start, else its first step's.

    No start at all (an InvalidSpec workflow has only a finishedAt) means nothing ran, so there
    is no span to measure, rather than one from the epoch.
    """
    starts = [parse_time(e.get("startedAt")) for e in (status.get("steps") or {}).values()
              if e.get("startedAt")]
    return parse_time(status.get("startedAt")) or min(starts, default=None)


def timeline_rows(status: Mapping[str, Any], now: float | None = None) -> tuple[list[Row], float]:
    """Rows in document order, times relative to the first start, and the total span."""
    steps = status.get("steps") or {}
    origin = timeline_origin(status)
    if origin is None:
        return [Row(name, entry.get("group", 0), entry.get("phase", "Pending"), None, None, False,
                    group_label(entry), phase_label(entry))
                for name, entry in sorted(steps.items(), key=lambda kv: kv[1].get("index", 0))], 0.0
    rows = []
    for name, entry in sorted(steps.items(), key=lambda kv: kv[1].get("index", 0)):
        start = parse_time(entry.get("startedAt"))
        end = parse_time(entry.get("finishedAt"))
        if start is not None and end is None:
            end = now if now is not None else start
        # A step kept by ``rerun --failed`` started and ended before this run did; drawn on this
        # run's axis its bar would start at a negative column and push the row out of the table.
        kept = start is not None and end is not None and start < origin and end < origin
        rows.append(Row(name, entry.get("group", 0), entry.get("phase", "Pending"),
                        None if start is None else start - origin,
                        None if end is None else end - origin, kept, group_label(entry), phase_label(entry)))
    span = max((r.end for r in rows if r.end is not None and not r.kept), default=0.0)
    finished = parse_time(status.get("finishedAt"))
    if finished is not None:
        span = max(span, finished - origin)
    return rows, span


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


def chart_width(status: Mapping[str, Any], console_width: int) -> int:
    """Columns left for bars once names, group, phase and duration are shown.

    The step column is never narrower than its header ``step``: with shorter names the rows
    used to overflow the console and rich cut every bar short with an ellipsis.
    """
    longest = max((len(n) for n in status.get("steps") or {}), default=0)
    return max(console_width - max(longest, len("step")) - 34, 20)


def render_timeline(status: Mapping[str, Any], width: int = 50, now: float | None = None) -> Table:
    """A rich table: step, group, phase, duration and a bar on a shared time axis."""
    rows, span = timeline_rows(status, now)
    width = max(width, len(human_duration(span)) + 2)
    table = Table(title=f"timeline (total {human_duration(span)})", show_edge=False, pad_edge=False)
    for column in ("step", "group", "phase", "took"):
        table.add_column(column, no_wrap=True)
    table.add_column(f"0{' ' * (width - len(human_duration(span)) - 1)}{human_duration(span)}",
                     no_wrap=True)
    for row in rows:
        cols = bar_columns(row, span, width)
        style = PHASE_STYLES.get(row.phase, "white")
        bar = Text(" " * width)
        if cols is None:
            bar = Text(f"{_placeholder(row):<{width}}", style="dim")
        else:
            bar = Text(" " * cols[0]) + Text("█" * (cols[1] - cols[0]), style=style)
            bar += Text(" " * (width - cols[1]))
        took = human_duration(row.end - row.start) if row.start is not None and row.end else ""
        table.add_row(row.name, row.group_label, Text(row.phase_label, style=style), took, bar)
    return table


def _placeholder(row: Row) -> str:
    """What stands in the chart for a row without a bar."""
    return "(kept from an earlier run)" if row.kept else f"({(row.phase_label or row.phase).lower()})"


def timeline_svg(status: Mapping[str, Any], now: float | None = None) -> str:
    """The same chart as a standalone SVG file."""
    rows, span = timeline_rows(status, now)
    label_w, chart_w, row_h, top = 180, 600, 22, 30
    height = top + row_h * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 20}" '
             f'height="{height}" font-family="monospace" font-size="12">',
             f'<text x="4" y="18">timeline, total {escape(human_duration(span))}</text>']
    for i, row in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="4" y="{y + 15}">{escape(row.name)}</text>')
        if row.start is None or row.kept or span <= 0:
            parts.append(f'<text x="{label_w}" y="{y + 15}" fill="#888">{escape(_placeholder(row))}</text>')
            continue
        x = label_w + row.start / span * chart_w
        w = max(((row.end or row.start) - row.start) / span * chart_w, 2)
        fill = PHASE_FILLS.get(row.phase, "#888")
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                     f'fill="{fill}"><title>{escape(row.name)}: {row.phase}</title></rect>')
    axis_y = top + row_h * len(rows) + 15
    parts.append(f'<text x="{label_w}" y="{axis_y}">0s</text>')
    parts.append(f'<text x="{label_w + chart_w - 40}" y="{axis_y}">{escape(human_duration(span))}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
