"""The $STEPFLOW_OUTPUTS format and rule O2, as both executors apply them."""

from __future__ import annotations

import pytest

from builders import plan_of, step
from stepflow.engine import FAILED, SUCCEEDED, StepState
from stepflow.outputs import parse_outputs, with_outputs


def test_lines_and_blocks_are_parsed_the_last_value_winning():
    values, problems = parse_outputs("tag=v1\nnote: for people\nnotes<<EOF\na\nb=c\nEOF\ntag=v2\n")
    assert values == {"tag": "v2", "notes": "a\nb=c"} and problems == []


def test_an_unclosed_block_is_a_problem_not_a_value():
    values, problems = parse_outputs("notes<<END\nline\n")
    assert "notes" not in values and "END" in problems[0]


def produced(text: str | bytes | None, outputs=("tag",)) -> StepState:
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


# --- issue 28, item 7: sizes count what the step wrote; a NUL is refused on the producer ---------

# The same file, as each executor receives it: its bytes (locally), or the termination message as
# the API serves it (in a cluster), each byte that was not UTF-8 replaced by U+FFFD.
def as_received(data: bytes) -> list[str | bytes]:
    return [data, data.decode("utf-8", "replace")]


@pytest.mark.parametrize("written", as_received(b"tag=" + b"\xff" * 1536))
def test_bytes_that_are_not_utf8_count_as_written_not_as_replacement_characters(written):
    state = produced(written)  # 1,540 bytes; 4,612 once each 0xFF became a 3-byte U+FFFD
    assert state.phase == SUCCEEDED, state.message
    assert state.outputs == {"tag": "\ufffd" * 1536}


@pytest.mark.parametrize("written", as_received(b"tag=" + b"\xff" * 3997))
def test_the_4000_byte_limit_counts_the_bytes_written(written):
    assert produced(written).phase == SUCCEEDED  # "tag" and 3,997 bytes: 4,000
    over = produced(written + (b"\xff" if isinstance(written, bytes) else "\ufffd"))
    assert over.reason == "OutputsTooLarge" and "4,001 bytes" in over.message


@pytest.mark.parametrize("written", as_received(b"tag=v1\n" + b"#" * 4089))
def test_a_file_the_kubelet_may_have_cut_is_too_large(written):
    """The kubelet keeps the last 4,096 bytes of the file: one that fills them may have lost its start."""
    assert produced(written).reason == "OutputsTooLarge"  # 4,096 bytes
    assert produced(written[:-1]).phase == SUCCEEDED  # 4,095


@pytest.mark.parametrize("written", as_received(b"tag=a\0b\nnote=c\0d\n"))
def test_a_nul_in_an_output_fails_the_producer_naming_it(written):
    state = produced(written)
    assert (state.phase, state.reason) == (FAILED, "InvalidOutput")
    assert 'output "tag"' in state.message and "NUL" in state.message and "byte 1" in state.message
    assert not state.outputs
    assert produced(written, outputs=("other",)).reason == "MissingOutput"  # undeclared lines are ignored
