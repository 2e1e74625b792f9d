"""``when`` conditions: CEL expressions over the results of a step's prerequisites (W1-W4).

One library compiles and evaluates them everywhere: Google's ``cel-expr-python``, the Python
binding of cel-cpp. It type-checks at compile time, so ``stepflow validate`` catches a
condition that is not boolean or compares a string with an int, and it never runs Python code.

A condition names steps literally, ``steps['build']`` or ``steps.build``, so the plan can
check statically that it reads only prerequisites (every value it reads is then final). Each
such access is rewritten into a placeholder of the same length with typed fields (``phase``
string, ``exitCode`` int, ``outputs`` map of strings); any other use of ``steps`` is then an
undeclared reference and is refused. Column numbers in errors stay those of the source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from stepflow.condition_cost import MAX_COST, MAX_ITERATIONS, estimate, referenced_names, variable_shapes

STEP_FIELDS = ("phase", "exitCode", "outputs")
WORKFLOW_FIELDS = ("name", "namespace", "failed")
MAX_REFERENCES = 1000  # placeholders are "__s<k>" padded to the access's length (at least 7)
MAX_SOURCE = 4096

_STRING = (r"""[rRbB]{0,2}(?:'''(?:.|\n)*?'''|\"\"\"(?:.|\n)*?\"\"\""""
           r"""|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""")
_SKIP_OR_STEPS = re.compile(rf"(?P<string>{_STRING})|(?P<comment>//[^\n]*)|(?<![\w.])steps(?!\w)")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _key(group: str) -> str:
    """``.name`` or ``['name']``, captured as ``<group>_name`` or ``<group>_key``."""
    return rf"(?:\s*\.\s*(?P<{group}_name>{_NAME})|\s*\[\s*(?P<{group}_key>{_STRING})\s*\])"


_STEP_ACCESS = re.compile(_key("step"))
_OUTPUT_ACCESS = re.compile(r"\s*\.\s*outputs(?!\w)(?:" + _key("output") + ")?")
_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*?)\n \|")


class ConditionSyntaxError(ValueError):
    """A ``when`` that does not compile, is not boolean, or uses ``steps`` other than literally."""


class ConditionEvaluationError(RuntimeError):
    """An error while evaluating a compiled condition (a missing output key, say): ConditionError."""


@dataclass(frozen=True)
class StepReference:
    """One literal access ``steps[<step>]`` in a condition, and the output it reads, if any."""

    step: str
    start: int
    end: int
    reads_outputs: bool = False
    output: str | None = None


@dataclass(frozen=True, eq=False)
class Condition:
    """A compiled, type-checked ``when``."""

    source: str
    references: tuple[StepReference, ...]
    _placeholders: tuple[str, ...]
    _program: Any
    names: frozenset[str] = frozenset()  # the variables and functions it refers to

    @property
    def reads_workflow_failed(self) -> bool:
        return "workflow.failed" in self.names

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps it reads, each once, in the order they appear."""
        return tuple(dict.fromkeys(r.step for r in self.references))

    def evaluate(self, steps: Mapping[str, Mapping[str, Any]], workflow: Mapping[str, Any]) -> bool:
        """``steps`` maps each step it reads to its phase, exitCode and outputs."""
        data: dict[str, Any] = {f"workflow.{k}": workflow[k] for k in WORKFLOW_FIELDS}
        for placeholder, reference in zip(self._placeholders, self.references, strict=True):
            view = steps[reference.step]
            for field in STEP_FIELDS:
                data[f"{placeholder}.{field}"] = view[field]
        try:
            result = self._program.eval(data=data)
        except Exception as exc:  # W2: any error at evaluation is the step's, never the run's
            raise ConditionEvaluationError(self._readable(_runtime_error(exc))) from None
        if result.type().name() == "ERROR":
            raise ConditionEvaluationError(self._readable(str(result.value())))
        return bool(result.value())

    def _readable(self, text: str) -> str:
        """A message in the user's terms: placeholders back to the accesses they replace."""
        for placeholder, reference in zip(self._placeholders, self.references, strict=True):
            text = text.replace(placeholder, self.source[reference.start:reference.end])
        return text


def compile_condition(source: str) -> Condition:
    """Compile and type-check ``source``; raises ConditionSyntaxError saying where it breaks."""
    if len(source) > MAX_SOURCE:
        raise ConditionSyntaxError(f"is {len(source)} characters long; at most {MAX_SOURCE} are allowed")
    if not source.strip():
        raise ConditionSyntaxError("is empty")
    references = find_references(source)
    if len(references) > MAX_REFERENCES:
        raise ConditionSyntaxError(f"reads steps {len(references)} times; at most {MAX_REFERENCES}")
    placeholders, rewritten = _rewrite(source, references)
    variables: dict[str, Any] = {"workflow.name": cel.Type.STRING, "workflow.namespace": cel.Type.STRING,
                                 "workflow.failed": cel.Type.BOOL}
    for placeholder in placeholders:
        variables[f"{placeholder}.phase"] = cel.Type.STRING
        variables[f"{placeholder}.exitCode"] = cel.Type.INT
        variables[f"{placeholder}.outputs"] = cel.Type.Map(cel.Type.STRING, cel.Type.STRING)
    condition = Condition(source, references, placeholders, None)
    try:
        program = cel.NewEnv(variables=variables).compile(rewritten)
    except RuntimeError as exc:
        raise ConditionSyntaxError(_describe(source, condition._readable(str(exc)))) from None
    kind = program.return_type().name()
    if kind != "BOOL":
        raise ConditionSyntaxError(f"must be a boolean expression; {source!r} is of type {kind.lower()} "
                                   "(compare it, e.g. == 'true')")
    checked = program.serialize()
    _check_cost(checked, placeholders)
    return Condition(source, references, placeholders, program, referenced_names(checked))


def _check_cost(checked: bytes, placeholders: tuple[str, ...]) -> None:
    """Refuse what could exceed the evaluation's bounds, from its worst case (see
    :mod:`stepflow.condition_cost`), as the API server refuses a CRD rule."""
    worst = estimate(checked, variable_shapes(placeholders))
    if worst.iterations > MAX_ITERATIONS:
        raise ConditionSyntaxError(
            f"may iterate {worst.iterations:,} times at worst; at most {MAX_ITERATIONS:,} are allowed "
            "(nested all/exists/map/filter multiply: each inner one runs once per outer element)")
    if worst.cost > MAX_COST:
        raise ConditionSyntaxError(
            f"has a worst-case cost of {worst.cost:,}; at most {MAX_COST:,} is allowed (values built "
            "in a comprehension, such as x + x in a map(), grow with every round)")


def _runtime_error(exc: Exception) -> str:
    """The library's exception in the user's terms."""
    text = str(exc).strip()
    if "Iteration budget exceeded" in text:
        return f"it iterated more than {MAX_ITERATIONS:,} times (nested all/exists/map/filter multiply)"
    return text.removeprefix("INTERNAL: ").removesuffix(" [INTERNAL]") or "the evaluation failed"


def find_references(source: str) -> tuple[StepReference, ...]:
    """Every literal ``steps.<name>`` / ``steps['<name>']`` access, skipping strings and comments."""
    found = []
    for match in _SKIP_OR_STEPS.finditer(source):
        if match.group("string") is not None or match.group("comment") is not None:
            continue
        access = _STEP_ACCESS.match(source, match.end())
        if access is None:
            continue  # left as "steps": the compile refuses it as an undeclared reference
        step = access.group("step_name") or _literal(access.group("step_key"))
        if step is None:
            continue
        output = _OUTPUT_ACCESS.match(source, access.end())
        name = None
        if output is not None:
            name = output.group("output_name") or _literal(output.group("output_key"))
        found.append(StepReference(step, match.start(), access.end(), output is not None, name))
    return tuple(found)


def _literal(text: str | None) -> str | None:
    """A plain quoted name; None for anything needing escapes (step names never do)."""
    if text is None:
        return None
    body = text.lstrip("rRbB")
    if "\\" in body or body[:1] != body[-1:] or len(body) < 2 or text[:1] in "bB":
        return None
    return body.strip("'\"") if body[:3] not in ("'''", '"""') else body[3:-3]


def _rewrite(source: str, references: tuple[StepReference, ...]) -> tuple[tuple[str, ...], str]:
    """Each access replaced by a placeholder identifier of exactly its length, so column numbers
    in the library's errors still point into the user's source."""
    placeholders, parts, last = [], [], 0
    for k, reference in enumerate(references):
        width = reference.end - reference.start
        placeholder = f"__s{k}".ljust(width, "_")
        if len(placeholder) > width or "\n" in source[reference.start:reference.end]:
            placeholder = f"__s{k}"  # a multi-line or tiny access: columns may shift, nothing else
        placeholders.append(placeholder)
        parts += [source[last:reference.start], placeholder]
        last = reference.end
    parts.append(source[last:])
    return tuple(placeholders), "".join(parts)


def _describe(source: str, error: str) -> str:
    """The library's first error, with the source marked where it breaks: ``1 +^``."""
    match = _ERROR.search(error)
    if match is None:
        return error.strip()
    line, column = int(match.group(1)), int(match.group(2))
    message = match.group(3).replace(" (in container '')", "")
    if "undeclared reference to 'steps'" in message:
        message = "read a step by its literal name, steps['name'] or steps.name"
    elif "undeclared reference to" in message:
        message += " (a name with '-' is read as steps['my-step'])" if "'steps." in message else ""
        message += f" (a step offers {', '.join(STEP_FIELDS)}; workflow offers {', '.join(WORKFLOW_FIELDS)})"
    lines = source.split("\n")
    offset = sum(len(text) + 1 for text in lines[: line - 1]) + column - 1
    marked = (source[:offset] + "^" + source[offset:]).replace("\n", " ")
    return f"{message}, at line {line} column {column}: {marked}" if len(lines) > 1 else (
        f"{message}, at column {column}: {marked}")
