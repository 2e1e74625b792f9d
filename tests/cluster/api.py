"""The HTTP face of the store: one method per Kubernetes verb, answering like the API server.

Create answers 201 (the official client returns None on kmock's 200), delete answers 200 when the
object is gone and 202 while finalizers hold it, list pages with `limit`/`continue`, and kubectl's
`Accept: ...;as=Table` gets a server-side Table.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import aiohttp.web
import yaml

from . import discovery, errors, patches, tables
from .resources import Registry, ResourceType
from .routes import Route
from .selectors import field_selector, label_selector
from .store import Store
from .watch import Watcher, WatchHub

PodLogs = Callable[[str, str], str | None]


def json_response(body: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body, separators=(",", ":")).encode(),
                                status=status, content_type="application/json", headers=headers)


def error_response(error: errors.ApiError) -> aiohttp.web.Response:
    return json_response(error.status(), error.code, error.headers)


class Api:
    def __init__(self, store: Store, registry: Registry, hub: Callable[[], WatchHub],
                 pod_logs: PodLogs, address: Callable[[], str]) -> None:
        self.store, self.registry, self.hub = store, registry, hub
        self.pod_logs, self.address = pod_logs, address

    async def serve(self, route: Route, raw: aiohttp.web.BaseRequest,
                    body: bytes) -> aiohttp.web.StreamResponse:
        if not route.is_resource:
            return self._non_resource(route)
        rt = self._resource_type(route)
        if route.query.get("dryRun"):
            raise errors.bad_request("dryRun is not supported by the emulator")
        if route.verb == "watch":
            return await self._watch(route, raw, rt)
        handler = getattr(self, f"_{route.verb}", None)
        if handler is None:
            raise errors.ApiError(405, f"{route.method} is not supported on {route.path}")
        return handler(route, rt, raw.headers, body)

    # --- resolution ---------------------------------------------------------------------------

    def _resource_type(self, route: Route) -> ResourceType:
        assert route.group is not None and route.version is not None and route.plural
        rt = self.registry.get(route.group, route.version, route.plural)
        if rt is None:
            raise errors.ApiError(404, "the server could not find the requested resource",
                                  details={"group": route.group, "kind": route.plural})
        if route.namespace and not rt.namespaced:
            raise errors.ApiError(404, f"{rt.plural} is not namespaced")
        return rt

    def _non_resource(self, route: Route) -> aiohttp.web.Response:
        path = route.path.rstrip("/") or "/"
        if route.group is not None and route.version is not None:
            return json_response(discovery.api_resources(self.registry, route.group,
                                                         route.version))
        if path.startswith("/apis/") and path.count("/") == 2:
            return json_response(discovery.api_group(self.registry, path.split("/")[2]))
        documents: dict[str, Callable[[], Any]] = {
            "/": lambda: discovery.root_paths(self.registry),
            "/api": lambda: discovery.api_versions(self.address()),
            "/apis": lambda: discovery.api_groups(self.registry),
            "/version": lambda: discovery.VERSION,
            "/openapi/v2": lambda: discovery.OPENAPI_V2,
        }
        if path in documents:
            return json_response(documents[path]())
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        raise errors.ApiError(404, f"the server could not find the requested resource ({path})")

    # --- reading ------------------------------------------------------------------------------

    def _predicates(self, route: Route) -> list[Callable[[dict[str, Any]], bool]]:
        return [label_selector(route.query.get("labelSelector")),
                field_selector(route.query.get("fieldSelector"))]

    def _list(self, route: Route, rt: ResourceType, headers: Any,
              body: bytes) -> aiohttp.web.Response:
        predicates = self._predicates(route)
        items, rv = self.store.list(rt, route.namespace,
                                    lambda obj: all(p(obj) for p in predicates))
        items, meta = _paginate(items, rv, route.query)
        if tables.wants_table(headers.get("Accept", "")):
            include = route.query.get("includeObject", "Metadata")
            return json_response(tables.render_table(rt, items, meta, include))
        return json_response({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                              "metadata": meta, "items": items})

    def _get(self, route: Route, rt: ResourceType, headers: Any,
             body: bytes) -> aiohttp.web.StreamResponse:
        assert route.name is not None
        obj = self.store.get(rt, route.namespace, route.name)
        if route.subresource == "log" and "log" in rt.subresources:
            return self._log(route, obj)
        if route.subresource and route.subresource not in rt.subresources:
            raise errors.not_found(f"{rt.plural}/{route.subresource}", rt.group, route.name)
        if tables.wants_table(headers.get("Accept", "")):
            meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            include = route.query.get("includeObject", "Metadata")
            return json_response(tables.render_table(rt, [obj], meta, include))
        return json_response(obj)

    def _log(self, route: Route, pod: dict[str, Any]) -> aiohttp.web.Response:
        text = self.pod_logs(pod["metadata"]["namespace"], pod["metadata"]["name"]) or ""
        tail = route.query.get("tailLines")
        if tail and tail.isdigit():
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail):] if int(tail) else [])
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _watch(self, route: Route, raw: aiohttp.web.BaseRequest,
                     rt: ResourceType) -> aiohttp.web.StreamResponse:
        predicates = self._predicates(route)
        if route.name:
            predicates.append(field_selector(f"metadata.name={route.name}"))
        render = None
        if tables.wants_table(raw.headers.get("Accept", "")):
            def render(obj: dict[str, Any]) -> dict[str, Any]:
                return tables.render_table(rt, [obj], {"resourceVersion":
                                                       obj["metadata"]["resourceVersion"]})
        watcher = Watcher(rt, route.namespace, predicates)
        return await self.hub().serve(raw, watcher, dict(route.query), render)

    # --- writing ------------------------------------------------------------------------------

    def _create(self, route: Route, rt: ResourceType, headers: Any,
                body: bytes) -> aiohttp.web.Response:
        if route.name is not None:
            raise errors.ApiError(405, f"POST is not supported on {route.path}")
        obj = self.store.create(rt, route.namespace, _object(body))
        return json_response(obj, 201)

    def _update(self, route: Route, rt: ResourceType, headers: Any,
                body: bytes) -> aiohttp.web.Response:
        assert route.name is not None
        obj = self.store.replace(rt, route.namespace, route.name, _object(body),
                                 route.subresource)
        return json_response(obj)

    def _patch(self, route: Route, rt: ResourceType, headers: Any,
               body: bytes) -> aiohttp.web.Response:
        assert route.name is not None
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in patches.SUPPORTED:
            raise errors.ApiError(415, f"unsupported patch type: {content_type!r}")
        patch = _parse(body, yaml_ok=content_type == patches.APPLY)
        exists = self.store.lookup(rt, route.namespace, route.name) is not None
        obj = self.store.patch(rt, route.namespace, route.name, patch, content_type,
                               route.subresource)
        return json_response(obj, 200 if exists else 201)

    def _delete(self, route: Route, rt: ResourceType, headers: Any,
                body: bytes) -> aiohttp.web.Response:
        assert route.name is not None
        propagation, preconditions = _delete_options(route, body)
        obj, gone = self.store.delete(rt, route.namespace, route.name,
                                      propagation=propagation, preconditions=preconditions)
        return json_response(obj, 200 if gone else 202)

    def _deletecollection(self, route: Route, rt: ResourceType, headers: Any,
                          body: bytes) -> aiohttp.web.Response:
        propagation, _ = _delete_options(route, body)
        predicates = self._predicates(route)
        items, _ = self.store.list(rt, route.namespace, lambda o: all(p(o) for p in predicates))
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                deleted.append(self.store.delete(rt, meta.get("namespace"), meta["name"],
                                                 propagation=propagation)[0])
            except errors.ApiError as e:
                if e.code != 404:
                    raise
        return json_response({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                              "metadata": {"resourceVersion": str(self.store.resource_version)},
                              "items": deleted})


def _parse(body: bytes, yaml_ok: bool = False) -> Any:
    try:
        return yaml.safe_load(body) if yaml_ok else json.loads(body or b"null")
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request(f"the request body is not valid JSON: {e}") from None


def _object(body: bytes) -> dict[str, Any]:
    obj = _parse(body)
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return obj


def _delete_options(route: Route, body: bytes) -> tuple[str | None, dict[str, Any] | None]:
    options = _parse(body) if body.strip() else {}
    options = options if isinstance(options, dict) else {}
    policy = route.query.get("propagationPolicy") or options.get("propagationPolicy")
    orphan = route.query.get("orphanDependents", options.get("orphanDependents"))
    if policy is None and orphan is not None:
        policy = "Orphan" if str(orphan).lower() == "true" else "Background"
    return policy, options.get("preconditions")


def _paginate(items: list[dict[str, Any]], rv: int,
              query: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    token, limit = query.get("continue"), query.get("limit", "")
    start = 0
    if token:
        try:
            token_rv, start = map(int, base64.b64decode(token).decode().split(":"))
        except ValueError:
            raise errors.bad_request("invalid continue token") from None
        meta["resourceVersion"] = str(token_rv)
    if not limit.isdigit() or int(limit) == 0:
        return items[start:], meta
    end = start + int(limit)
    if end < len(items):
        meta["continue"] = base64.b64encode(f"{meta['resourceVersion']}:{end}".encode()).decode()
        meta["remainingItemCount"] = len(items) - end
    return items[start:end], meta
