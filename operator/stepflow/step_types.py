"""Step types (T1-T5): a platform team says once how a kind of step runs; a step names it.

Resolution happens on the document, before :mod:`stepflow.spec` parses it: each step whose
``type`` names a known type becomes a plain step with the type's fields under its own (T2), and
its ``with`` completed with the params' defaults and checked against them (T3). What comes out
is an ordinary Workflow document, so every rule, the plan and both executors treat a typed step
exactly as the same step written out. The params reach the container as environment variables
(:attr:`stepflow.spec.Step.params`), never as text in a script.

Pure: the types come in as a :class:`Catalog` (from ``--types`` files, the operator's watch, or
what a run kept in ``status.stepTypes``), and the result is a new document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from stepflow import fields
from stepflow.field_checks import OUTPUT_NAME, FieldError, described, excerpt
from stepflow.spec import step_field_errors
from stepflow.waits import close_match

KINDS = ("StepType", "ClusterStepType")
API_VERSION = "stepflow.dev/v1alpha1"
RUN_FIELDS = ("command", "args", "script")  # what to run: taken from the step or the type, as one
SPEC_FIELDS = fields.names(fields.STEP_TYPE_SPEC)
TYPE_ONLY = ("description", "params")


@dataclass(frozen=True)
class StepType:
    """One StepType or ClusterStepType, as read and checked."""

    kind: str
    name: str
    spec: Mapping[str, Any]
    resource_version: str = ""
    source: str = field(default="", compare=False)  # locally: the file it came from

    @property
    def params(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.spec.get("params") or ())

    @property
    def how(self) -> dict[str, Any]:
        """The fields a step takes from the type."""
        return {k: v for k, v in self.spec.items() if k not in TYPE_ONLY}

    def kept(self) -> dict[str, Any]:
        """Its entry in ``status.stepTypes`` (T5)."""
        return {"kind": self.kind, "name": self.name, "resourceVersion": self.resource_version,
                "spec": copy.deepcopy(dict(self.spec))}


class TypeLookup(Protocol):
    def find(self, name: str) -> StepType | None: ...


@dataclass(frozen=True)
class Catalog:
    """The types a workflow may use: its namespace's, then the cluster's (T2)."""

    namespaced: Mapping[str, StepType] = field(default_factory=dict)
    cluster: Mapping[str, StepType] = field(default_factory=dict)

    def find(self, name: str) -> StepType | None:
        return self.namespaced.get(name) or self.cluster.get(name)

    @classmethod
    def of(cls, types: Iterable[StepType]) -> Catalog:
        """From a list; a later type of the same kind and name replaces an earlier one."""
        namespaced: dict[str, StepType] = {}
        cluster: dict[str, StepType] = {}
        for t in types:
            (namespaced if t.kind == "StepType" else cluster)[t.name] = t
        return cls(namespaced, cluster)

    @classmethod
    def kept(cls, status: Mapping[str, Any] | None) -> Catalog | None:
        """What a run resolved when it started (``status.stepTypes``); None if it kept nothing."""
        entries = (status or {}).get("stepTypes")
        if not isinstance(entries, Mapping):
            return None
        # Only the operator writes status, but whoever may patch it could write anything: each
        # entry is read as a type again, one that is not is left out, and the step's type is then
        # missing (InvalidSpec) rather than a crash on every reconcile.
        types = [t for name, e in entries.items() if isinstance(e, Mapping)
                 for t in [_read_kept(name, e)] if t is not None]
        # A kept entry stands for the name the step used, whatever its kind: look it up first.
        return cls({t.name: t for t in types}, {})


def _read_kept(name: str, entry: Mapping[str, Any]) -> StepType | None:
    kind = entry.get("kind") if entry.get("kind") in KINDS else "StepType"
    found, _ = read_step_type({"apiVersion": API_VERSION, "kind": kind,
                               "metadata": {"name": str(entry.get("name") or name),
                                            "resourceVersion": str(entry.get("resourceVersion") or "")},
                               "spec": entry.get("spec")})
    return found


@dataclass(frozen=True)
class Resolution:
    """A workflow document with its types resolved."""

    document: Any
    used: Mapping[str, StepType]  # by the name the steps use
    missing: Mapping[str, tuple[str, ...]]  # type name -> the paths of the steps that need it
    errors: tuple[FieldError, ...] = ()

    def kept(self) -> dict[str, Any]:
        return {name: t.kept() for name, t in sorted(self.used.items())}


def is_step_type(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("kind") in KINDS


def read_step_type(doc: Any, where: str = "") -> tuple[StepType | None, list[FieldError]]:
    """A StepType or ClusterStepType document, checked as the CRD and T1 say; ``where``
    prefixes every error's path (``[document 2] ``)."""
    errors: list[FieldError] = []

    def error(path: str, message: str) -> None:
        errors.append(FieldError(f"{where}{path}", message))

    if not isinstance(doc, Mapping):
        return None, [FieldError(f"{where}(document)", f"must be an object, got {described(doc)}")]
    if doc.get("apiVersion") != API_VERSION:
        error("apiVersion", f"must be {API_VERSION!r}, got {described(doc.get('apiVersion'))}")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        error("metadata.name", "is required")
        name = ""
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        error("spec", f"must be an object, got {described(spec)}")
        return None, errors
    label = f'{doc.get("kind")} "{name}"'
    for key in spec:
        if key in fields.WHEN_FIELDS:
            error(f"spec.{key}", f"{label}: a type says how a step runs, never when or with what: "
                                 f"{key} belongs to the step")
        elif key not in SPEC_FIELDS:
            error(f"spec.{key}", f"{label}: unknown field{close_match(str(key), set(SPEC_FIELDS))}")
    errors += [FieldError(f"{where}{e.path}", f"{label}: {e.message}") for e in _param_errors(spec)]
    if "command" in spec and "script" in spec:
        error("spec", f"{label}: set command or script, not both")
    if "args" in spec and "command" not in spec:
        error("spec.args", f"{label}: args is only allowed together with command (a script runs "
                           "with sh -c)")
    how = {k: v for k, v in spec.items() if k in SPEC_FIELDS and k not in TYPE_ONLY}
    errors += [FieldError(f"{where}{e.path}", f"{label}: {e.message}")
               for e in step_field_errors(how, "spec")]
    if errors:
        return None, errors
    return StepType(str(doc["kind"]), name, dict(spec), str(meta.get("resourceVersion") or "")), []


def _param_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    params = spec.get("params")
    if params is None:
        return []
    if not isinstance(params, list):
        return [FieldError("spec.params", f"must be a list of {{name, description, default, enum}}, "
                                          f"got {described(params)}")]
    errors, seen = [], set()
    for i, param in enumerate(params):
        path = f"spec.params[{i}]"
        if not isinstance(param, Mapping):
            errors.append(FieldError(path, f"must be an object, got {described(param)}"))
            continue
        for key in param:
            if key not in ("name", "description", "default", "enum"):
                hint = close_match(str(key), {"name", "description", "default", "enum"})
                errors.append(FieldError(f"{path}.{key}", f"unknown field{hint}"))
        name = param.get("name")
        if not isinstance(name, str) or len(name) > 63 or not OUTPUT_NAME.fullmatch(name):
            errors.append(FieldError(f"{path}.name", f"{excerpt(name)} is not a param name (letters, "
                                                     "digits and '_', not starting with a digit, at "
                                                     "most 63 characters: it names an environment "
                                                     "variable)"))
        elif name in seen:
            errors.append(FieldError(f"{path}.name", f'declares param "{name}" twice'))
        seen.add(name)
        for key in ("description", "default"):
            if key in param and not isinstance(param[key], str):
                errors.append(FieldError(f"{path}.{key}", f"must be a string, got {described(param[key])} "
                                                          "(quote numbers and booleans)"))
        enum = param.get("enum")
        if enum is not None and (not isinstance(enum, list) or not enum
                                 or not all(isinstance(v, str) for v in enum)):
            errors.append(FieldError(f"{path}.enum", "must be a non-empty list of strings"))
        elif enum is not None and isinstance(param.get("default"), str) and param["default"] not in enum:
            errors.append(FieldError(f"{path}.default", f"{excerpt(param['default'])} is not one of "
                                                        f"enum ({', '.join(enum)})"))
    return errors


def resolve(doc: Any, catalog: TypeLookup) -> Resolution:
    """The document with each typed step merged with its type (T2, T3). A step whose type is
    unknown stays as written if it has something to run and no ``with`` (a label, T4); else its
    type is missing."""
    spec = doc.get("spec") if isinstance(doc, Mapping) else None
    if not isinstance(spec, Mapping):
        return Resolution(doc, {}, {})
    used: dict[str, StepType] = {}
    missing: dict[str, list[str]] = {}
    errors: list[FieldError] = []
    new_spec = dict(spec)
    for where in ("steps", "finally"):
        steps = spec.get(where)
        if not isinstance(steps, list):
            continue
        merged = []
        for i, step in enumerate(steps):
            path = f"spec.{where}[{i}]"
            name = step.get("type") if isinstance(step, Mapping) else None
            found = catalog.find(name) if isinstance(name, str) else None
            if found is None:
                if isinstance(name, str) and (not any(k in step for k in ("command", "script"))
                                              or "with" in step):
                    missing.setdefault(name, []).append(path)
                merged.append(step)
                continue
            used[name] = found
            step, problems = merge(step, found, path)
            merged.append(step)
            errors += problems
        new_spec[where] = merged
    return Resolution({**doc, "spec": new_spec}, used, {k: tuple(v) for k, v in missing.items()},
                      tuple(errors))


def merge(step: Mapping[str, Any], step_type: StepType, path: str) -> tuple[dict[str, Any], list[FieldError]]:
    """One step over its type (T2): the step's fields win; command, args and script go together
    (a step's ``command`` or ``script`` replaces the type's three; its ``args`` alone keep the
    type's ``command``, as a pod's args keep its image's entrypoint); ``env`` merges by name, the
    type's first."""
    merged = step_type.how
    own = [k for k in RUN_FIELDS if k in step]
    for key in (RUN_FIELDS if own and own != ["args"] else own):
        merged.pop(key, None)
    for key, value in step.items():
        if key == "env" and isinstance(value, list) and isinstance(merged.get("env"), list):
            own = {v.get("name") for v in value if isinstance(v, Mapping)}
            merged["env"] = [v for v in merged["env"] if v.get("name") not in own] + list(value)
        else:
            merged[key] = value
    params, errors = _params(step, step_type, path)
    if params is not None:
        merged["with"] = params
        clashes = [v.get("name") for v in merged.get("env") or () if v.get("name") in params]
        label = _label(step, step_type)
        errors += [FieldError(f"{path}.env", f"{label}: env variable {name!r} has the name of a param; "
                                             "params are variables already") for name in clashes]
    return merged, errors


def _label(step: Mapping[str, Any], step_type: StepType) -> str:
    return f'step "{step.get("name")}" (type "{step_type.name}", a {step_type.kind})'


def _params(step: Mapping[str, Any], step_type: StepType, path: str) -> tuple[dict[str, str] | None,
                                                                             list[FieldError]]:
    """T3: ``with`` checked against the type's params, completed with their defaults."""
    given = step.get("with", {})
    label = _label(step, step_type)
    if not isinstance(given, Mapping):
        return None, [FieldError(f"{path}.with", f"{label}: must be a map of param names to strings, "
                                                 f"got {described(given)}")]
    declared = {p["name"]: p for p in step_type.params}
    errors, values = [], {}
    for key, value in given.items():
        where = f"{path}.with.{key}"
        if key not in declared:
            known = ", ".join(declared) or "none"
            errors.append(FieldError(where, f"{label}: unknown param{close_match(str(key), set(declared))} "
                                            f"(its params: {known})"))
        elif not isinstance(value, str):
            errors.append(FieldError(where, f"{label}: must be a string, got {described(value)} "
                                            "(quote numbers and booleans)"))
        elif declared[key].get("enum") and value not in declared[key]["enum"]:
            errors.append(FieldError(where, f"{label}: {excerpt(value)} is not one of "
                                            f"{', '.join(declared[key]['enum'])}"))
        else:
            values[key] = value
    for name, param in declared.items():
        if name in given:
            continue
        if "default" in param:
            values[name] = param["default"]
        else:
            errors.append(FieldError(f"{path}.with.{name}", f"{label}: the param is required "
                                                            "(it has no default)"))
    return {name: values[name] for name in declared if name in values}, errors
