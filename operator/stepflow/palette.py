"""The colours of a step's phase, the one palette of every picture stepflow draws.

Mermaid and DOT (:mod:`stepflow.graph`), the SVG timeline (:mod:`stepflow.timeline`) and the
web UI (served to its pages as a stylesheet, :func:`stylesheet`) all read it, so a Failed step
is the same red in each. A module of its own because the timeline reads only a status and has
no business importing the plan. Colours are six-digit hex, which Mermaid, Graphviz, SVG and CSS
all accept.
"""

from __future__ import annotations

PHASE_FILLS = {
    "Succeeded": "#40a02b", "Failed": "#d20f39", "Running": "#1e66f5", "Pending": "#9ca0b0",
    "Skipped": "#9ca0b0", "Cancelled": "#df8e1d",
}
TEXT = "#ffffff"  # a step's name on any of the fills above
STROKE = "#555555"  # the outline of a step's box


def stylesheet() -> str:
    """The palette as CSS custom properties (``--phase-Failed``, ``--phase-text``, ...) for the UI,
    whose own stylesheet only refers to them."""
    lines = [f"  --phase-{phase}: {fill};" for phase, fill in PHASE_FILLS.items()]
    lines += [f"  --phase-text: {TEXT};", f"  --phase-stroke: {STROKE};"]
    header = "/* generated from stepflow.palette: the colours of a step's phase */"
    return header + "\n:root {\n" + "\n".join(lines) + "\n}\n"
