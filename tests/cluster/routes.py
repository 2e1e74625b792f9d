"""URL parsing into Kubernetes request parts (group, version, namespace, plural, name, verb).

kmock's parser crashes on `/api/v1/namespaces` and cannot tell a namespace object from a
namespace scope, so every request is parsed here; the result also labels the request log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    query: Mapping[str, str]
    group: str | None = None  # None: not a resource path (discovery, /version, ...)
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    verb: str = "other"

    @property
    def is_resource(self) -> bool:
        return self.plural is not None


def _verb(method: str, name: str | None, query: Mapping[str, str]) -> str:
    if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
        return "watch"
    if name is None:
        return {"GET": "list", "POST": "create", "DELETE": "deletecollection"}.get(method, "other")
    return {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
            "POST": "create"}.get(method, "other")


def parse(method: str, path: str, query: Mapping[str, str]) -> Route:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        verb = "discovery" if parts[:1] in (["api"], ["apis"]) else "other"
        return Route(method, path, query, verb=verb)
    if not rest:
        return Route(method, path, query, group, version, verb="discovery")
    if rest[0] == "watch":  # the deprecated /watch/ prefix
        rest, query = rest[1:], {**query, "watch": "true"}
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Route(method, path, query, group, version, plural, namespace, name, subresource,
                 _verb(method, name, query))
