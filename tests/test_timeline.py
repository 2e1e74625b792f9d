"""The Gantt chart drawn from a status document (a --report file or the CR's status)."""

from __future__ import annotations

from rich.console import Console

from builders import plan_of
from simulate import simulate
from stepflow.status import build_status
from stepflow.timeline import bar_columns, render_timeline, timeline_rows, timeline_svg

T0 = 1_764_106_255.0


def status_of(text, durations, fails=(), **spec):
    plan = plan_of(text, **spec)
    result = simulate(plan, durations, fails, t0=T0)
    return build_status(plan, result.states, result.decision, now=result.end_time, started_at=T0,
                        finished_at=result.end_time)


def rendered(table) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_rows_are_in_document_order_with_times_relative_to_the_start():
    status = status_of("p a, p b, s c, s d", {"a": 1, "b": 2, "c": 1, "d": 1}, fails={"c"})
    rows, span = timeline_rows(status)
    assert [r.name for r in rows] == ["a", "b", "c", "d"]
    assert [(r.start, r.end) for r in rows[:3]] == [(0, 1), (0, 2), (2, 3)]
    assert rows[3].phase == "Skipped" and rows[3].start is None
    assert span == 3


def test_bars_of_parallel_steps_overlap_and_groups_follow_each_other():
    status = status_of("p a, p b, s c", {"a": 2, "b": 2, "c": 2})
    rows, span = timeline_rows(status)
    a, b, c = (bar_columns(r, span, 60) for r in rows)
    assert a == b == (0, 30)
    assert c == (30, 60)


def test_every_step_that_ran_gets_at_least_one_column():
    status = status_of("s a, s b", {"a": 0.001, "b": 100})
    rows, span = timeline_rows(status)
    first, last = bar_columns(rows[0], span, 40)
    assert last - first >= 1


def test_rendered_chart_has_one_row_per_step_including_skipped_ones():
    status = status_of("s a, s b, s c", {"a": 1, "b": 1}, fails={"b"})
    text = rendered(render_timeline(status, width=40))
    for name in ("a", "b", "c"):
        assert any(line.lstrip().startswith(name + " ") for line in text.splitlines())
    assert "(skipped)" in text
    assert "Failed" in text and "total 2.0s" in text


def test_running_steps_extend_to_now():
    status = status_of("s a, s b", {"a": 1, "b": 1})
    status["steps"]["b"].pop("finishedAt")
    status["steps"]["b"]["phase"] = "Running"
    status.pop("finishedAt")
    rows, span = timeline_rows(status, now=T0 + 5)
    assert rows[1].end == 5 and span == 5


def test_svg_has_a_bar_per_step_that_ran_and_labels_the_rest():
    status = status_of("p a, p b, s c", {"a": 1, "b": 1}, fails={"a"})
    svg = timeline_svg(status)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<rect") == 2
    assert "(skipped)" in svg and "a: Failed" in svg


def test_an_invalid_spec_workflow_has_no_span_rather_than_one_from_the_epoch():
    from stepflow.spec import FieldError
    from stepflow.status import human_duration, invalid_status

    status = invalid_status([FieldError("spec.steps", "must list at least one step")], now=T0,
                            observed_generation=1)
    rows, span = timeline_rows(status)
    assert rows == [] and span == 0.0
    assert "total 0ms" in rendered(render_timeline(status))
    assert human_duration(-0.3) == "0ms" and human_duration(float("nan")) == ""
