"""The resource types the emulator serves: built-ins plus whatever CRDs are loaded.

kmock guesses resources from the objects it has seen, so an empty resource is undiscoverable and
kopf never starts watching it. Here every served type is declared up front (built-ins) or derived
from a CRD, and discovery, routing and validation all read from this one registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    """One served resource in one API version, e.g. batch/v1 jobs."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False  # defined by a CRD: PUT needs a resourceVersion, objects get validated
    schema: dict[str, Any] | None = None  # openAPIV3Schema of this version
    printer_columns: tuple[dict[str, Any], ...] = ()
    default_propagation: str = "Background"
    max_name_length: int = 253
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> str:
        """Objects are stored per group+plural, so every served version sees the same objects."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def names(self) -> set[str]:
        """All the names a test (or kubectl) may use for this resource."""
        return {
            self.plural,
            self.singular or self.kind.lower(),
            self.kind.lower(),
            self.storage_key,
            f"{self.api_version}/{self.plural}",
            *self.short_names,
        }


def _core(plural: str, kind: str, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, singular=kind.lower(), **kw)


BUILTINS: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", namespaced=False, short_names=("ns",),
          subresources=("status",), max_name_length=63),
    _core("pods", "Pod", short_names=("po",), categories=("all",),
          subresources=("status", "log")),
    _core("events", "Event", short_names=("ev",)),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    # The Job API's own default is to orphan pods; kubectl and GC pass Background explicitly.
    ResourceType("batch", "v1", "jobs", "Job", singular="job", categories=("all",),
                 subresources=("status",), default_propagation="Orphan", max_name_length=63),
    ResourceType("events.k8s.io", "v1", "events", "Event", singular="event", short_names=("ev",)),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", namespaced=False, singular="customresourcedefinition",
                 short_names=("crd", "crds"), categories=("api-extensions",),
                 subresources=("status",)),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd["spec"]
    names = spec["names"]
    result = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = tuple(sorted((version.get("subresources") or {}).keys()))
        result.append(ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names["kind"].lower(),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=subresources,
            custom=True,
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
        ))
    return result


@dataclass
class Registry:
    """Thread-safe lookup of served resource types by URL parts or by any of their names."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def with_builtins(cls) -> Registry:
        registry = cls()
        for rt in BUILTINS:
            registry.add(rt)
        return registry

    def add(self, rt: ResourceType) -> None:
        with self._lock:
            self._types[rt.group, rt.version, rt.plural] = rt

    def remove_crd(self, group: str, plural: str) -> None:
        with self._lock:
            for key in [k for k in self._types if k[0] == group and k[2] == plural]:
                del self._types[key]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name -> versions, the preferred (first-registered) version first."""
        result: dict[str, list[str]] = {}
        for rt in self.all():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return result

    def find(self, name: str) -> ResourceType:
        """Resolve "jobs", "Job", "swf", "batch/v1/jobs" or "workflows.stepflow.dev"."""
        lowered = name.lower()
        matches = [rt for rt in self.all() if lowered in {n.lower() for n in rt.names()}]
        if not matches:
            raise KeyError(f"unknown resource {name!r}")
        # Core v1 events win over events.k8s.io for the bare name "events".
        matches.sort(key=lambda rt: (rt.group != "", rt.group))
        return matches[0]

    def by_kind(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for rt in self.all():
            if (rt.group, rt.version, rt.kind) == (group, version, kind):
                return rt
        raise KeyError(f"no resource for apiVersion={api_version!r} kind={kind!r}")
