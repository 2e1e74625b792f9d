"""Step outputs (O1-O3): the ``$STEPFLOW_OUTPUTS`` file format, and what both executors keep.

A step writes ``name=value`` lines, or ``name<<DELIM`` ... ``DELIM`` blocks for multi-line
values, as GitHub Actions' ``$GITHUB_OUTPUT`` does. In a cluster the file is the container's
termination-message path, so the kubelet carries it into the pod's status (4,096 bytes at
most); locally it is a file per step. Pure functions: the executors read the text, these
decide what it means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from stepflow.engine import (
    FAILED,
    INVALID_OUTPUT,
    MISSING_OUTPUT,
    OUTPUTS_TOO_LARGE,
    SUCCEEDED,
    StepState,
    state_of,
)
from stepflow.plan import Plan
from stepflow.spec import Step

MAX_OUTPUTS_BYTES = 4000  # all of a step's outputs together (O2)
TERMINATION_MESSAGE_BYTES = 4096  # what the kubelet keeps of the file; more is cut off
OUTPUTS_PATH = "/dev/termination-log"  # the container's default terminationMessagePath
_BLOCK = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)<<(\S.*)")
_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


def parse_outputs(text: str) -> tuple[dict[str, str], list[str]]:
    """The values written, the last one winning, and the problems found (an unclosed block).
    Other lines are ignored: the file may carry text the step wrote for people."""
    values: dict[str, str] = {}
    problems: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        i += 1
        block = _BLOCK.fullmatch(line)
        if block is not None:
            name, delimiter = block.group(1), block.group(2)
            body: list[str] = []
            while i < len(lines) and lines[i].removesuffix("\r") != delimiter:
                body.append(lines[i].removesuffix("\r"))
                i += 1
            if i >= len(lines):
                problems.append(f'the block of output "{name}" has no closing line "{delimiter}"')
                continue
            i += 1
            values[name] = "\n".join(body)
            continue
        single = _LINE.fullmatch(line)
        if single is not None:
            values[single.group(1)] = single.group(2)
    return values, problems


def with_outputs(step: Step, state: StepState, written: str | bytes | None, problem: str = "") -> StepState:
    """O2 for a step that ended: a success keeps its declared outputs, or fails MissingOutput,
    OutputsTooLarge or InvalidOutput. A failed step records none.

    ``written`` is what the step wrote to $STEPFLOW_OUTPUTS: its bytes (locally), or its
    termination message as the API serves it (in a cluster), where each byte that was not UTF-8
    has become U+FFFD and counts as that one byte. None if it could not be read at all;
    ``problem`` then says why. Sizes are those of what the step wrote, never of the
    replacement characters standing for it."""
    if state.phase != SUCCEEDED or not step.outputs:
        return state
    if written is None and problem:
        names = ", ".join(f'"{n}"' for n in step.outputs)
        return _fail(state, MISSING_OUTPUT, f"exited 0, but its outputs ({names}) cannot be read: {problem}")
    text = _as_written(written)
    size = _size(text)
    if size >= TERMINATION_MESSAGE_BYTES:  # the kubelet keeps the last 4,096: a longer file is cut
        more = " or more" if size > TERMINATION_MESSAGE_BYTES else ""
        return _fail(state, OUTPUTS_TOO_LARGE, (
            f"wrote {size:,} bytes{more} to $STEPFLOW_OUTPUTS; a container keeps only the last "
            f"{TERMINATION_MESSAGE_BYTES:,} of that file, so it must stay below that, and at most "
            f"{MAX_OUTPUTS_BYTES:,} bytes of outputs are kept"))
    values, problems = parse_outputs(text)
    missing = [name for name in step.outputs if name not in values]
    if missing:
        names = ", ".join(f'"{n}"' for n in missing)
        detail = "; " + "; ".join(problems) if problems else ""
        return _fail(state, MISSING_OUTPUT, f"exited 0 without writing output {names} to "
                                            f"$STEPFLOW_OUTPUTS{detail}")
    kept = {name: values[name] for name in step.outputs}
    for name, value in kept.items():
        if "\0" in value:
            at = _size(value[:value.index("\0")])
            return _fail(state, INVALID_OUTPUT, (
                f'output "{name}" holds a NUL byte (at byte {at:,} of its value), which no environment '
                "variable can carry, so no step could read it; encode the value (base64, say)"))
    size = sum(_size(k) + _size(v) for k, v in kept.items())
    if size > MAX_OUTPUTS_BYTES:
        return _fail(state, OUTPUTS_TOO_LARGE, f"its outputs take {size:,} bytes; at most "
                                               f"{MAX_OUTPUTS_BYTES:,} are kept")
    return replace(state, outputs={name: _as_text(value) for name, value in kept.items()})


def _as_written(written: str | bytes | None) -> str:
    """The file as text where each byte that is not UTF-8 is one lone surrogate (Python's
    surrogateescape), so that sizes count the bytes written."""
    if isinstance(written, bytes):
        return written.decode("utf-8", "surrogateescape")
    return (written or "").replace("\ufffd", "\udcff")  # what the API server replaced: one byte each


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _as_text(value: str) -> str:
    """A value as status keeps it: each byte that was not UTF-8 as U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _fail(state: StepState, reason: str, message: str) -> StepState:
    return replace(state, phase=FAILED, reason=reason, message=message, outputs={})


def output_env(plan: Plan, step: Step, states: Mapping[str, StepState]) -> dict[str, str]:
    """O3: each ``stepOutput`` variable's value, read when the step starts: the output, or its
    ``default`` if the producer did not succeed (a step without outputs keeps none). The engine
    starts a step only once every output it reads without a default exists (else
    OutputUnavailable)."""
    defaults = step.output_defaults
    return {var: state_of(plan, producer, states).outputs.get(output, defaults.get(var, ""))
            for var, producer, output in step.output_sources}
