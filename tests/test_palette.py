"""One palette for every picture. Mirror: ``operator/stepflow/palette.py``.

A Failed step is the same red in the SVG timeline, in Mermaid, in DOT and in the web UI; the UI's
stylesheet names the colours but never writes one down. The browser tests
(tests/kube/test_e2e_ui.py) check the colour Chromium actually paints.
"""

from __future__ import annotations

import re

from builders import plan_of
from stepflow.graph import to_dot, to_mermaid
from stepflow.palette import PHASE_FILLS, STROKE, TEXT, stylesheet
from stepflow.timeline import timeline_svg
from stepflow.ui.server import STATIC

FAILED = PHASE_FILLS["Failed"]
STATUS = {
    "phase": "Failed",
    "startedAt": "2026-12-03T10:00:00Z",
    "finishedAt": "2026-12-03T10:00:05Z",
    "steps": {
        "build": {"index": 0, "group": 0, "phase": "Succeeded",
                  "startedAt": "2026-12-03T10:00:00Z", "finishedAt": "2026-12-03T10:00:02Z"},
        "test": {"index": 1, "group": 1, "phase": "Failed",
                 "startedAt": "2026-12-03T10:00:02Z", "finishedAt": "2026-12-03T10:00:05Z"},
    },
}
PHASES = {name: entry["phase"] for name, entry in STATUS["steps"].items()}


def custom_properties(css: str) -> dict[str, str]:
    return dict(re.findall(r"(--[\w-]+):\s*([^;]+);", css))


def ui_fill(selector: str) -> str:
    """The colour style.css gives ``selector``, resolved through the served palette.css."""
    style = (STATIC / "style.css").read_text()
    rule = re.search(re.escape(selector) + r"\s*\{([^}]*)\}", style)
    assert rule is not None, f"style.css has no rule for {selector}"
    variable = re.search(r"(?:fill|background):\s*var\((--[\w-]+)\)", rule.group(1))
    assert variable is not None, f"{selector} is not coloured from the palette: {rule.group(1)}"
    return custom_properties(stylesheet())[variable.group(1)]


def test_a_failed_step_has_the_same_fill_in_the_timeline_mermaid_dot_and_the_ui():
    plan = plan_of("s build, s test")
    svg_fill = re.search(r'fill="(#\w+)"><title>test: Failed', timeline_svg(STATUS)).group(1)
    mermaid = to_mermaid(plan, PHASES)
    mermaid_fill = re.search(r"classDef Failed fill:(#\w+)", mermaid).group(1)
    assert "class s_test Failed" in mermaid
    dot_fill = re.search(r'"test" \[[^]]*fillcolor="(#\w+)"', to_dot(plan, PHASES)).group(1)
    graph_node = ui_fill('.dag .node[data-phase="Failed"] rect')
    gantt_bar = ui_fill('.gantt .bar[data-phase="Failed"]')
    badge = ui_fill('.badge[data-phase="Failed"]')
    assert svg_fill == mermaid_fill == dot_fill == graph_node == gantt_bar == badge == FAILED


def test_names_on_a_fill_and_outlines_share_the_palette_too():
    plan = plan_of("s build, s test")
    assert f"stroke:{STROKE},color:{TEXT}" in to_mermaid(plan, PHASES)
    assert f'fontcolor="{TEXT}", color="{STROKE}"' in to_dot(plan, PHASES)
    served = custom_properties(stylesheet())
    assert served["--phase-text"] == TEXT and served["--phase-stroke"] == STROKE


def test_the_ui_stylesheet_writes_down_no_phase_colour_of_its_own():
    """Every --phase-* it uses is one the palette serves, and it defines none itself."""
    style = (STATIC / "style.css").read_text()
    assert not [name for name in custom_properties(style) if name.startswith("--phase-")]
    used = set(re.findall(r"var\((--phase-[\w-]+)\)", style))
    assert used and used <= set(custom_properties(stylesheet()))
