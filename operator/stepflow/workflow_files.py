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


def _compiled(path: str | Path, types: Iterable[str | Path], name: str | None = None
              ) -> tuple[list[tuple[str, Plan]], list[FieldError], list[FieldError], list[str]]:
    """The Workflows of a file (only those called ``name``, if given) planned with the step types
    given and those in the file: (prefix, plan) pairs, the errors of the type documents, those
    of the Workflows (each with its ``[document N]`` prefix), and every Workflow's name."""
    docs = read_documents(path)
    given, type_errors = load_types(types)
    own, problems = _types_of(docs, str(path))
    catalog = Catalog.of(given + own)
    plans, errors, names = [], [], []
    for number, doc in enumerate(docs, start=1):
        if is_step_type(doc):
            continue
        names.append(_name_of(doc))
        if name is not None and names[-1] != name:
            continue
        prefix = _prefix(number, len(docs))
        try:
            plans.append((prefix, compile_workflow(doc, catalog)))
        except SpecError as exc:
            errors.extend(FieldError(prefix + e.path, e.message) for e in exc.errors)
    return plans, type_errors + problems, errors, names


def _name_of(doc: Any) -> str:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def file_plans(path: str | Path, types: Iterable[str | Path] = ()
               ) -> tuple[list[tuple[str, Plan]], list[FieldError]]:
    """Every valid Workflow of a file with its ``[document N] `` prefix ("" in a file of one
    document), for the errors found in it later, and the errors of all the others: a file's
    every problem in one pass. An unreadable file raises SpecError."""
    plans, type_errors, errors, _ = _compiled(path, types)
    errors = type_errors + errors
    if not plans and not errors:
        errors.append(FieldError("(file)", "contains no Workflow document, only step types"))
    return plans, errors


def load_plans(path: str | Path, types: Iterable[str | Path] = ()) -> list[Plan]:
    """Every Workflow in a file, planned with the step types given and those in the file; all
    errors of all documents in one SpecError."""
    plans, errors = file_plans(path, types)
    if errors:
        raise SpecError(errors)
    return [plan for _, plan in plans]


def load_plan(path: str | Path, name: str | None = None, types: Iterable[str | Path] = ()) -> Plan:
    """The one Workflow of a file, or the one called ``name`` in a file of several: the file
    is read and checked as ``validate`` reads it, whichever command asks. With ``name``, only
    that Workflow counts: a sibling's errors, or a type's it does not use, do not refuse it."""
    if name is not None:
        chosen, type_errors, errors, names = _compiled(path, types, name)
        if chosen:
            return chosen[0][1]
        if errors or type_errors:
            raise SpecError(type_errors + errors)
        held = ", ".join(f'"{n}"' for n in names if n) or "no Workflow"
        raise SpecError([FieldError("(file)", f'holds no Workflow "{name}" (it holds: {held})')])
    plans = load_plans(path, types)
    if len(plans) != 1:
        names = ", ".join(p.spec.name for p in plans)
        raise SpecError([FieldError("(file)", f"holds {len(plans)} Workflows ({names}); choose one with "
                                              "--name")])
    return plans[0]
