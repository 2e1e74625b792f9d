"""Discovery documents (/api, /apis, ...), /version and OpenAPI stubs, from the registry.

kopf scans /api and /apis to learn which resources exist and whether they have a `status`
subresource (which decides whether it patches `/status`); kubectl needs the same to resolve
`swf` to workflows.stepflow.dev. kmock reported `/api/v1` as groupVersion `/v1`; here core is
"v1" and every loaded CRD appears as soon as it is created.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError
from .resources import ALL_VERBS, SUB_VERBS, Registry, ResourceType

VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-stepflow-emulator",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
    "platform": "linux/amd64",
}

# Empty specs: enough for `kubectl --validate=false`, which only needs them to parse.
OPENAPI_V2 = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
              "paths": {}, "definitions": {}}


def _resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    entries = [{
        "name": rt.plural, "singularName": rt.singular or rt.kind.lower(),
        "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(rt.verbs or ALL_VERBS),
        "shortNames": list(rt.short_names), "categories": list(rt.categories),
    }]
    for sub in rt.subresources:
        verbs = ["get"] if sub == "log" else list(SUB_VERBS)
        entries.append({"name": f"{rt.plural}/{sub}", "singularName": "",
                        "namespaced": rt.namespaced, "kind": rt.kind, "verbs": verbs})
    return entries


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_versions(address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def api_groups(registry: Registry) -> dict[str, Any]:
    groups = [_group_doc(name, versions)
              for name, versions in sorted(registry.groups().items()) if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any]:
    versions = registry.groups().get(group)
    if not group or not versions:
        raise ApiError(404, f"the server could not find the requested resource (group {group})")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def api_resources(registry: Registry, group: str, version: str) -> dict[str, Any]:
    types = [rt for rt in registry.all() if (rt.group, rt.version) == (group, version)]
    if not types:
        raise ApiError(404, f"the server could not find the requested resource "
                            f"({group or 'core'}/{version})")
    group_version = f"{group}/{version}" if group else version
    resources = [entry for rt in sorted(types, key=lambda t: t.plural)
                 for entry in _resource_entries(rt)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def root_paths(registry: Registry) -> dict[str, Any]:
    paths = {"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version",
             "/openapi/v2"}
    for name, versions in registry.groups().items():
        if name:
            paths.add(f"/apis/{name}")
            paths.update(f"/apis/{name}/{v}" for v in versions)
    return {"paths": sorted(paths)}
