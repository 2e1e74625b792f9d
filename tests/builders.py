"""Build Workflow documents for tests, tersely.

``shorthand("p a, pg1 b, s c")`` reads the notation DESIGN.md uses for its
examples, so a test can quote a rule's example verbatim instead of spelling
out YAML. Everything returns plain dicts, exactly what a user would apply.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from stepflow.plan import Plan, compile_workflow

API_VERSION = "stepflow.dev/v1alpha1"


def step(
    name: str,
    *,
    parallel: bool | None = None,
    group: int | None = None,
    depends_on: list[str] | None = None,
    script: str = "true",
    **fields: Any,
) -> dict[str, Any]:
    """One step; keyword fields are passed through under their camelCase name."""
    doc: dict[str, Any] = {"name": name, "script": script}
    if parallel is not None:
        doc["parallel"] = parallel
    if group is not None:
        doc["parallelGroup"] = group
    if depends_on is not None:
        doc["dependsOn"] = list(depends_on)
    doc.update(fields)
    return doc


def workflow(*steps: dict[str, Any], name: str = "wf", **spec: Any) -> dict[str, Any]:
    """A whole Workflow document around ``steps``; keyword spec fields in camelCase."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {**spec, "steps": list(steps)},
    }


def shorthand(text: str) -> list[dict[str, Any]]:
    """DESIGN.md's notation: ``p a`` parallel, ``pgN a`` parallelGroup N, ``s a`` sequential.

    A trailing ``->x+y`` adds ``dependsOn: [x, y]``; ``->`` alone adds ``dependsOn: []``.
    """
    steps = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        kind, _, rest = item.partition(" ")
        name, arrow, deps = rest.strip().partition("->")
        depends_on = [d for d in deps.split("+") if d] if arrow else None
        if kind == "p":
            steps.append(step(name.strip(), parallel=True, depends_on=depends_on))
        elif kind.startswith("pg"):
            steps.append(step(name.strip(), group=int(kind[2:]), depends_on=depends_on))
        elif kind == "s":
            steps.append(step(name.strip(), depends_on=depends_on))
        else:
            raise ValueError(f"unknown step kind {kind!r} in {item!r}")
    return steps


def plan_of(text_or_steps: str | list[dict[str, Any]], **spec: Any) -> Plan:
    """Compile a shorthand string or a step list into a plan (valid input expected)."""
    steps = shorthand(text_or_steps) if isinstance(text_or_steps, str) else text_or_steps
    return compile_workflow(workflow(*steps, **spec))


def write_workflow(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Hung(BaseException):
    """Raised by :func:`within`; not an OSError (as TimeoutError is), so that no ``except
    OSError`` in the code under test swallows it."""


@contextlib.contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fails the test instead of hanging it when the block runs longer than ``seconds``: a
    blocking system call (opening a FIFO) is interrupted; a single long C computation (building
    a huge int) only once it returns."""
    def expired(signum, frame):
        raise Hung(f"took more than {seconds}s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
