"""A matrix step's status entries arranged for the views (M6). Mirror: ``operator/stepflow/fan_rows.py``.

The statuses are built as the executors build them (a simulated run, then ``build_status``), so
the entries are the real ones: copies with ``matrixOf``/``matrix``, the whole with ``copies``.
"""

from __future__ import annotations

from builders import plan_of, step
from simulate import simulate
from stepflow.fan_rows import COPY_ROWS, phase_counts, ran, status_lines, values_text, worth_showing
from stepflow.status import build_status

T0 = 1_764_106_255.0


def fan_status(values: list[str], fails=(), name: str = "deploy") -> dict:
    """prep, then ``name`` with one copy per value, then a step that waits for it."""
    plan = plan_of([step("prep"), step(name, matrix={"REGION": values}),
                    step("after", depends_on=[name], continueOnError=True)])
    result = simulate(plan, {}, fails, t0=T0)
    return build_status(plan, result.states, result.decision, now=result.end_time, started_at=T0,
                        finished_at=result.end_time)


def test_the_whole_comes_first_then_its_copies_in_copy_order_each_once():
    status = fan_status(["eu", "us", "ap"])
    lines = status_lines(status["steps"])
    assert [(line.name, line.kind) for line in lines] == [
        ("prep", "step"), ("deploy", "whole"), ("deploy-0", "copy"), ("deploy-1", "copy"),
        ("deploy-2", "copy"), ("after", "step")]
    assert [line.label for line in lines[1:5]] == [
        "deploy", "  deploy-0 (REGION=eu)", "  deploy-1 (REGION=us)", "  deploy-2 (REGION=ap)"]


def test_a_256_copy_step_keeps_ten_rows_its_failures_among_them_and_counts_the_rest():
    status = fan_status([f"r{i}" for i in range(256)], fails={"deploy-7", "deploy-200"})
    steps = status["steps"]
    steps["deploy-250"] = {**steps["deploy-250"], "phase": "Running"}  # as if seen mid-run
    lines = status_lines(steps)
    copies = [line.name for line in lines if line.kind == "copy"]
    assert len(copies) == COPY_ROWS - 1 and len(lines) == 1 + 1 + COPY_ROWS + 1
    assert {"deploy-7", "deploy-200", "deploy-250"} <= set(copies)  # what needs a look
    assert copies == sorted(copies, key=lambda n: int(n.rsplit("-", 1)[1]))  # still in copy order
    more = next(line for line in lines if line.kind == "more")
    assert sum(more.hidden.values()) == 256 - len(copies)
    assert more.label == f"  … {256 - len(copies)} more copies"
    assert phase_counts(more.hidden) == f"{256 - len(copies)} Succeeded"
    assert lines[-1].name == "after"  # the next step, after the count


def test_every_copy_lists_them_all():
    status = fan_status([f"r{i}" for i in range(40)])
    lines = status_lines(status["steps"], every_copy=True)
    assert sum(line.kind == "copy" for line in lines) == 40 and not any(line.kind == "more" for line in lines)


def test_ten_copies_are_all_shown_eleven_are_folded():
    assert sum(line.kind == "copy" for line in status_lines(fan_status(list("abcdefghij"))["steps"])) == 10
    folded = status_lines(fan_status(list("abcdefghijk"))["steps"])
    assert sum(line.kind == "copy" for line in folded) == 9 and folded[-2].kind == "more"


def test_the_whole_entry_is_not_a_step_that_ran():
    status = fan_status(["eu", "us"])
    assert sorted(name for name, _ in ran(status["steps"])) == ["after", "deploy-0", "deploy-1", "prep"]


def test_a_copy_whose_step_has_no_entry_is_a_row_of_its_own():
    steps = {"deploy-0": {"index": 0, "phase": "Succeeded", "matrixOf": "deploy", "matrix": {"R": "eu"}}}
    assert [(line.name, line.kind, line.label) for line in status_lines(steps)] == [
        ("deploy-0", "copy", "  deploy-0 (R=eu)")]


def test_values_are_on_one_line_and_cut():
    assert values_text({"A": "x" * 100, "B": "two\nlines"}, limit=10) == "A=xxxxxxxxx… B=two⏎lines"


def test_worth_showing_prefers_failed_and_running_and_keeps_copy_order():
    names = [f"c-{i}" for i in range(20)]
    phases = {"c-15": "Failed", "c-3": "Running", "c-19": "Running"}
    assert worth_showing(names, phases, 5) == ["c-0", "c-1", "c-3", "c-15", "c-19"]
    assert worth_showing(names[:4], phases, 5) == names[:4]
