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


# --- fan-out (M6) ------------------------------------------------------------------------------

def fan_status(values, fails=()):
    from builders import step

    plan = plan_of([step("prep"), step("deploy", matrix={"REGION": list(values)}),
                    step("after", depends_on=["deploy"])], maxConcurrency=2)
    result = simulate(plan, {}, fails, t0=T0)
    return build_status(plan, result.states, result.decision, now=result.end_time, started_at=T0,
                        finished_at=result.end_time)


def test_a_matrix_step_is_a_summary_row_over_its_copies_bars_not_a_bar_of_its_own():
    status = fan_status(["eu", "us", "ap"])  # two at a time: 0 and 1 at 1-2 s, then 2 at 2-3 s
    rows, span = timeline_rows(status)
    assert [(r.name, r.kind) for r in rows] == [("prep", "step"), ("deploy", "whole"), ("deploy-0", "copy"),
                                                ("deploy-1", "copy"), ("deploy-2", "copy"), ("after", "step")]
    whole = rows[1]
    assert (whole.start, whole.end, whole.shown_name) == (1, 3, "deploy \u00d73")
    assert span == 4  # the whole adds nothing to the span
    text = rendered(render_timeline(status, width=40))
    line = next(t for t in text.splitlines() if t.startswith("deploy \u00d73"))
    assert "├" in line and "┤" in line and "█" not in line  # a bracket, not a step that ran
    assert any(t.startswith("  deploy-2 (REGION=ap)") and "█" in t for t in text.splitlines())
    assert text.count("█" * 10) == 5  # prep, three copies, after: a solid bar each


def test_the_svg_outlines_the_matrix_step_and_fills_its_copies():
    svg = timeline_svg(fan_status(["eu", "us"]))
    assert svg.count("<rect") == 5 and svg.count('fill="none"') == 1
    assert "deploy: Succeeded, 2 copies" in svg
    assert ">deploy-1 (REGION=us)</text>" in svg and "deploy \u00d72" in svg


def test_a_256_copy_step_keeps_the_chart_short_unless_every_copy_is_asked_for():
    status = fan_status([f"r{i}" for i in range(256)], fails={"deploy-200"})
    text = rendered(render_timeline(status, width=40))
    assert len(text.splitlines()) < 25
    assert "deploy-200 (REGION=r200)" in text  # the failed copy, whatever its number
    assert "… 247 more copies" in text and "(247 Succeeded)" in text
    assert "--all-copies draws every copy" in text
    assert timeline_svg(status).count("<rect") < 15
    every = rendered(render_timeline(status, width=40, every_copy=True))
    assert all(f"deploy-{i} " in every for i in range(256))
    assert len(timeline_rows(status)[0]) == 259  # the UI's Gantt reads every entry


def test_copy_values_are_printed_as_written_never_as_markup_or_escapes():
    status = fan_status(["[red]x", "\x1b[2J"])
    text = rendered(render_timeline(status, width=40))
    assert "(REGION=[red]x)" in text and "\\x1b[2J" in text and "\x1b" not in text
