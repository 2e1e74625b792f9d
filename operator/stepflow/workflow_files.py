"""Workflow files into plans: every document of a file checked as ``stepflow validate`` checks
it, whichever command reads the file. The file I/O of the plan layer; :mod:`stepflow.plan`
stays pure.

Step types (T4) come from ``--types`` paths (files, or folders of ``*.yaml``/``*.yml``) and from
StepType/ClusterStepType documents in the workflow's own file, which win over ``--types``.
Locally there is one namespace: a StepType's namespace is not looked at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from stepflow.plan import Plan, compile_workflow
from stepflow.spec import FieldError, SpecError, read_documents
from stepflow.step_types import Catalog, StepType, is_step_type, read_step_type

TYPE_SUFFIXES = (".yaml", ".yml")


def _prefix(number: int, count: int) -> str:
    return f"[document {number}] " if count > 1 else ""


def _types_of(docs: list[Any], source: str) -> tuple[list[StepType], list[FieldError]]:
    """The step type documents among ``docs``, checked; ``source`` says where each came from."""
    types, errors = [], []
    for number, doc in enumerate(docs, start=1):
        if not is_step_type(doc):
            continue
        found, problems = read_step_type(doc, _prefix(number, len(docs)))
        errors += problems
        if found is not None:
            where = f"{source} (document {number})" if len(docs) > 1 else source
            types.append(replace(found, resource_version="", source=where))
    return types, errors


def load_types(paths: Iterable[str | Path]) -> tuple[list[StepType], list[FieldError]]:
    """The step types of ``--types`` paths; documents of other kinds there are left alone."""
    types: list[StepType] = []
    errors: list[FieldError] = []
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.suffix in TYPE_SUFFIXES) if path.is_dir() else [path]
        for file in files:
            try:
                found, problems = _types_of(read_documents(file), str(file))
            except SpecError as exc:
                found, problems = [], exc.errors
            types += found
            errors += [FieldError(f"{file}: {e.path}", e.message) for e in problems]
    return types, errors


def load_plans(path: str | Path, types: Iterable[str | Path] = ()) -> list[Plan]:
    """Every Workflow in a file, planned with the step types given and those in the file; all
    errors of all documents in one SpecError."""
    docs = read_documents(path)
    given, errors = load_types(types)
    own, problems = _types_of(docs, str(path))
    catalog = Catalog.of(given + own)
    errors += problems
    plans = []
    for number, doc in enumerate(docs, start=1):
        if is_step_type(doc):
            continue
        try:
            plans.append(compile_workflow(doc, catalog))
        except SpecError as exc:
            prefix = _prefix(number, len(docs))
            errors.extend(FieldError(prefix + e.path, e.message) for e in exc.errors)
    if not plans and not errors:
        errors.append(FieldError("(file)", "contains no Workflow document, only step types"))
    if errors:
        raise SpecError(errors)
    return plans


def load_plan(path: str | Path, name: str | None = None, types: Iterable[str | Path] = ()) -> Plan:
    """The one Workflow of a file, or the one called ``name`` in a file of several: the file
    is read and checked as ``validate`` reads it, whichever command asks."""
    plans = load_plans(path, types)
    if name is not None:
        chosen = [p for p in plans if p.spec.name == name]
        if not chosen:
            names = ", ".join(p.spec.name for p in plans)
            raise SpecError([FieldError("(file)", f'holds no Workflow "{name}" (it holds: {names})')])
        return chosen[0]
    if len(plans) != 1:
        names = ", ".join(p.spec.name for p in plans)
        raise SpecError([FieldError("(file)", f"holds {len(plans)} Workflows ({names}); choose one with "
                                              "--name")])
    return plans[0]
