"""A step's ``matrix`` field (M1), read and checked on its own: the named lists, or a list that
a prerequisite's output will hold.

What needs the whole workflow (a copy's name clashing with a step's, the 1,000-step bound, the
source being a prerequisite) is :mod:`stepflow.matrix`'s and :mod:`stepflow.dataflow`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stepflow import fields
from stepflow.field_checks import OUTPUT_NAME, Collector, described, excerpt

MAX_COPIES = 256  # per step (M1)
MAX_EXPANDED_STEPS = 1000  # in a workflow with a matrix, once expanded (M1): the CRD's bound
# Every copy's values are kept in status (M2), whose budget is 512 KiB: bounded per step and per
# workflow, counted as the characters of all copies' values.
MAX_STEP_VALUES = 64 * 1024
MAX_WORKFLOW_VALUES = 128 * 1024
INDEX_VARIABLE = "STEPFLOW_MATRIX_INDEX"  # each copy's number, from 0 (M2)
RESERVED_PREFIX = "STEPFLOW_"  # the variables stepflow sets


@dataclass(frozen=True)
class Axis:
    """One name of a matrix: the values written down, or the output they come from."""

    name: str
    values: tuple[str, ...] | None = None
    source: tuple[str, str] | None = None  # fromOutput: (step, output)

    def as_written(self) -> Any:
        if self.source is not None:
            return {"fromOutput": {"step": self.source[0], "output": self.source[1]}}
        return list(self.values or ())


def literal_count(axes: Sequence[Axis]) -> int | None:
    """How many copies a matrix written down makes; None while a list comes from an output."""
    if any(a.values is None for a in axes):
        return None
    return math.prod(len(a.values or ()) for a in axes)


def read_matrix(obj: Mapping[str, Any], path: str, c: Collector) -> tuple[Axis, ...]:
    """M1's shape: a map of variable names to a non-empty list of strings or to fromOutput."""
    if obj.get("matrix") is None:
        return ()
    where = f"{path}.matrix"
    given = c.mapping(obj.get("matrix"), where)
    if isinstance(obj.get("matrix"), Mapping) and not given:
        c.error(where, "must name at least one list (such as region: [eu, us])")
    if len(given) > fields.MAX_MATRIX_NAMES:
        c.error(where, f"has {len(given)} names; at most {fields.MAX_MATRIX_NAMES}")
        return ()
    axes = []
    for name, value in given.items():
        plain = isinstance(name, str) and re.fullmatch(r"\w{1,63}", name, re.ASCII)
        at = f"{where}.{name}" if plain else f"{where}[{excerpt(name)}]"
        if not isinstance(name, str) or len(name) > 63 or not OUTPUT_NAME.fullmatch(name):
            c.error(at, "is not a matrix name: it names each copy's environment variable (letters, digits "
                        "and '_', not starting with a digit, at most 63)")
        elif name.startswith(RESERVED_PREFIX):
            c.error(at, f"is reserved: stepflow sets the variables named {RESERVED_PREFIX}*")
        elif isinstance(value, list):
            values = _values(value, at, c)
            if values is not None:
                axes.append(Axis(name, values=values))
        elif isinstance(value, Mapping) and "fromOutput" in value:
            source = _source(value, at, c)
            if source is not None:
                axes.append(Axis(name, source=source))
        else:
            c.error(at, f"must be a list of strings, or {{fromOutput: {{step: S, output: O}}}}, got "
                        f"{described(value)}")
    return tuple(axes)


def _values(value: list[Any], at: str, c: Collector) -> tuple[str, ...] | None:
    if not value:
        c.error(at, "is an empty list: a matrix runs one copy per value, so list at least one")
        return None
    if len(value) > MAX_COPIES:
        c.error(at, f"lists {len(value)} values; a step makes at most {MAX_COPIES} copies")
        return None
    good = True
    for i, item in enumerate(value):
        if not isinstance(item, str):
            c.error(f"{at}[{i}]", f"must be a string, got {described(item)} (quote numbers and booleans)")
            good = False
        elif "\0" in item:
            c.error(f"{at}[{i}]", "contains a NUL byte, which no environment variable can carry")
            good = False
        elif len(item) > fields.MAX_PARAM_VALUE:
            c.error(f"{at}[{i}]", f"is {len(item)} characters long; at most {fields.MAX_PARAM_VALUE}")
            good = False
    return tuple(value) if good else None


def _source(value: Mapping[str, Any], at: str, c: Collector) -> tuple[str, str] | None:
    c.unknown_fields(value, ("fromOutput",), at)
    source = c.mapping(value["fromOutput"], f"{at}.fromOutput", required=True)
    c.unknown_fields(source, ("step", "output"), f"{at}.fromOutput")
    step = c.typed(source, "step", f"{at}.fromOutput", str)
    output = c.typed(source, "output", f"{at}.fromOutput", str)
    for key, given in (("step", step), ("output", output)):
        if given is None and isinstance(source, Mapping) and source.get(key) is None:
            c.error(f"{at}.fromOutput.{key}", "is required")
    if not step or not output:
        return None
    return step, output
