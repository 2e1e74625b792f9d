"""Step types in the operator (T2, T4): what the watches of StepTypes and ClusterStepTypes
show, and the workflows waiting for a missing one.

A workflow whose new run needs a type that neither kind has waits, phase ``Pending``, reason
``StepTypeNotFound``; the watch event that brings the type wakes it (no polling). Before a
workflow is told to wait, the API is asked once (a list by name, which the RBAC allows): a
type that exists but whose watch event has not arrived yet, as just after a start, is found.
Resolving from what a run kept (``status.stepTypes``, T5) never comes here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from stepflow.operator.api import Api
from stepflow.operator.runtime.api import Forbidden
from stepflow.operator.store import Key
from stepflow.step_types import StepType, TypeLookup, read_step_type

log = logging.getLogger(__name__)
CLUSTER = ""  # the namespace under which ClusterStepTypes are kept


class TypeBook:
    """The step types the watches show, by (namespace, name); ClusterStepTypes under ""."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], StepType] = {}
        self._waiting: dict[tuple[str, str], set[Key]] = {}  # (namespace or "", type) -> workflows
        self._unusable: dict[tuple[str, str], str] = {}  # what the API has that read_step_type refused

    def put(self, obj: Mapping[str, Any], kind: str, deleted: bool = False) -> list[Key]:
        """A watch event; returns the workflows to wake (those waiting for this type)."""
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or CLUSTER) if kind == "StepType" else CLUSTER
        where = (namespace, str(meta.get("name")))
        found, problem = (None, "") if deleted else self._read(obj, kind)
        with self._lock:
            self._unusable.pop(where, None)
            if problem:
                self._unusable[where] = f"{kind} {where[1]} exists but is not usable: {problem}"
            if found is None:
                self._types.pop(where, None)
                return []
            self._types[where] = found
            if namespace == CLUSTER:
                keys = [k for (_, name), waiting in self._waiting.items() if name == where[1]
                        for k in waiting]
            else:
                keys = list(self._waiting.get(where, ()))
            return sorted(keys)

    def find(self, namespace: str, name: str) -> StepType | None:
        with self._lock:
            return self._types.get((namespace, name)) or self._types.get((CLUSTER, name))

    def problems(self, namespace: str, names: Iterable[str]) -> list[str]:
        """Why types of these names that exist cannot be used, for the waiting message."""
        with self._lock:
            return [self._unusable[where] for name in names for where in ((namespace, name), (CLUSTER, name))
                    if where in self._unusable]

    def view(self, namespace: str) -> NamespaceTypes:
        return NamespaceTypes(self, namespace)

    def confirm(self, api: Api, namespace: str, names: Iterable[str]) -> None:
        """Ask the API for types the watches have not shown (yet); what it has is kept."""
        for name in names:
            for where, kind in ((namespace, "StepType"), (None, "ClusterStepType")):
                try:
                    obj = api.find_step_type(where, name)
                except Forbidden:  # a namespaced operator may not read ClusterStepTypes
                    continue
                if obj is not None:
                    self.put(obj, kind)
                    break

    def wait(self, key: Key, names: Iterable[str]) -> None:
        """``key``'s new run waits for these types; replaces what it waited for before."""
        with self._lock:
            self._forget(key)
            for name in names:
                self._waiting.setdefault((key[0], name), set()).add(key)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._forget(key)

    def _forget(self, key: Key) -> None:
        for where in [w for w, keys in self._waiting.items() if key in keys]:
            self._waiting[where].discard(key)
            if not self._waiting[where]:
                del self._waiting[where]

    @staticmethod
    def _read(obj: Mapping[str, Any], kind: str) -> tuple[StepType | None, str]:
        """The API server checked the schema; what it cannot check (a bad env entry, say)
        leaves the type out, said once in the log and in the message of a workflow that waits."""
        found, errors = read_step_type({**obj, "kind": kind, "apiVersion": "stepflow.dev/v1alpha1"})
        problem = "; ".join(str(e) for e in errors)
        if errors:
            log.warning("%s %s is not usable: %s", kind, (obj.get("metadata") or {}).get("name"), problem)
        return found, problem


class NamespaceTypes:
    """The types a workflow of one namespace sees: its namespace's, then the cluster's (T2)."""

    def __init__(self, book: TypeBook, namespace: str) -> None:
        self.book = book
        self.namespace = namespace

    def find(self, name: str) -> StepType | None:
        return self.book.find(self.namespace, name)


class StepTypesMissing(Exception):
    """A new run needs types that exist nowhere yet (T4)."""

    def __init__(self, namespace: str, missing: Mapping[str, tuple[str, ...]],
                 problems: Iterable[str] = ()) -> None:
        self.missing = dict(missing)
        names = ", ".join(f'"{name}" (step{"s" if len(paths) > 1 else ""} {", ".join(paths)})'
                          for name, paths in sorted(missing.items()))
        self.message = (f"waiting for step types: {names}: no usable StepType in namespace "
                        f"{namespace} nor ClusterStepType has that name yet; the run starts once "
                        "they exist") + "".join(f"; {problem}" for problem in problems)
        super().__init__(self.message)


def versions(body: Mapping[str, Any], types: TypeLookup) -> tuple[tuple[str, str, str], ...]:
    """Which version of each type the workflow's steps name would resolve to: a plan made
    with other versions is not this one."""
    spec = body.get("spec") or {}
    names = {s.get("type") for part in ("steps", "finally") for s in spec.get(part) or ()
             if isinstance(s, Mapping) and isinstance(s.get("type"), str)}
    found = ((name, types.find(name)) for name in sorted(names))
    return tuple((name, t.kind, t.resource_version) for name, t in found if t is not None)
