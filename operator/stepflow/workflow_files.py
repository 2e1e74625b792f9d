"""Workflow files into plans: every document of a file checked as ``stepflow validate`` checks
it, whichever command reads the file. The file I/O of the plan layer; :mod:`stepflow.plan`
stays pure.
"""

from __future__ import annotations

from pathlib import Path

from stepflow.plan import Plan, compile_workflow
from stepflow.spec import FieldError, SpecError, read_documents


def load_plans(path: str | Path) -> list[Plan]:
    """Every Workflow in a file, planned; all errors of all documents in one SpecError."""
    docs = read_documents(path)
    plans, errors = [], []
    for number, doc in enumerate(docs, start=1):
        prefix = f"[document {number}] " if len(docs) > 1 else ""
        try:
            plans.append(compile_workflow(doc))
        except SpecError as exc:
            errors.extend(FieldError(prefix + e.path, e.message) for e in exc.errors)
    if errors:
        raise SpecError(errors)
    return plans


def load_plan(path: str | Path, name: str | None = None) -> Plan:
    """The one Workflow of a file, or the one called ``name`` in a file of several: the file
    is read and checked as ``validate`` reads it, whichever command asks."""
    plans = load_plans(path)
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
