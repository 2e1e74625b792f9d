"""The $STEPFLOW_OUTPUTS format and rule O2, as both executors apply them."""

from __future__ import annotations

from builders import plan_of, step
from stepflow.engine import FAILED, SUCCEEDED, StepState
from stepflow.outputs import parse_outputs, with_outputs


def test_lines_and_blocks_are_parsed_the_last_value_winning():
    values, problems = parse_outputs("tag=v1\nnote: for people\nnotes<<EOF\na\nb=c\nEOF\ntag=v2\n")
    assert values == {"tag": "v2", "notes": "a\nb=c"} and problems == []


def test_an_unclosed_block_is_a_problem_not_a_value():
    values, problems = parse_outputs("notes<<END\nline\n")
    assert "notes" not in values and "END" in problems[0]


def produced(text: str | None, outputs=("tag",)) -> StepState:
    plan = plan_of([step("build", outputs=list(outputs))])
    return with_outputs(plan.step_by_name["build"], StepState(phase=SUCCEEDED, exit_code=0), text)


def test_only_declared_outputs_are_kept():
    assert produced("tag=v1\nother=x\n").outputs == {"tag": "v1"}


def test_a_success_without_a_declared_output_fails_missing_output():
    state = produced("other=x\n", outputs=("tag", "digest"))
    assert (state.phase, state.reason) == (FAILED, "MissingOutput")
    assert '"tag"' in state.message and '"digest"' in state.message and not state.outputs


def test_outputs_over_4000_bytes_fail_outputs_too_large():
    assert produced("tag=" + "x" * 3998).reason == "OutputsTooLarge"  # 3 + 3998 bytes: over
    assert produced("tag=" + "x" * 3997 + "\n" + "y" * 200).reason == "OutputsTooLarge"  # over 4,096
    assert produced("tag=" + "x" * 3997).phase == SUCCEEDED  # exactly 4,000


def test_a_failed_step_records_no_outputs():
    plan = plan_of([step("build", outputs=["tag"])])
    failed = StepState(phase=FAILED, exit_code=1, termination_message="boom")
    assert with_outputs(plan.step_by_name["build"], failed, "tag=v1") == failed
