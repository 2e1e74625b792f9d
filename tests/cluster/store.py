"""The object store: API semantics that kmock's dict-merging emulator lacks.

uid, resourceVersion (one global counter, as etcd's revision), generation (bumped only when
something other than metadata and status changes), creationTimestamp, the status subresource
split, optimistic concurrency (409 on a stale resourceVersion), finalizers with
deletionTimestamp, and owner-reference garbage collection with Background, Foreground and Orphan
propagation.

Every change is appended to a bounded per-resource history of watch events, which watches
replay from a resourceVersion (like the API server's watch cache), and is passed to listeners
(watch wake-ups, the Job controller, CRD registration). All methods are thread-safe: tests
call them from their own thread, the HTTP server from its loop. Stored objects are never
mutated in place, so readers may hold them without copying.
"""

from __future__ import annotations

import datetime
import json
import random
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .defaults import apply_create_defaults
from .patches import APPLY, apply_patch, clone
from .resources import Registry, ResourceType, types_from_crd
from .schema import checker_for
from .selectors import Predicate
from .validation import validate_kind, validate_metadata, validate_name

ObjKey = tuple[str, str, str]  # (storage key, namespace or "", name)
SERVER_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "name", "namespace")
NOT_SPEC = ("apiVersion", "kind", "metadata", "status")
MAX_OBJECT_BYTES = 1_572_864  # etcd's default request limit (1.5 MiB)
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"


def timestamp(moment: float | None = None) -> str:
    """RFC 3339 with seconds, as metav1.Time serialises."""
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC) if moment is not None else \
        datetime.datetime.now(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    """One change, as a watch would see it; `old` lets watchers notice selector transitions."""

    rv: int
    type: str
    storage_key: str
    obj: dict[str, Any]
    old: dict[str, Any] | None
    _json: str | None = field(default=None, repr=False)

    def object_json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.obj, separators=(",", ":"))
        return self._json


Listener = Callable[[Event], None]


class Store:
    def __init__(self, registry: Registry, *, history_limit: int = 5000,
                 auto_namespaces: bool = True) -> None:
        self.registry = registry
        self.auto_namespaces = auto_namespaces
        self.lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        self._uids: dict[str, ObjKey] = {}
        self._dependents: dict[str, set[ObjKey]] = defaultdict(set)
        self._foreground: set[ObjKey] = set()
        self._rv = 1
        self.history_limit = history_limit
        self._history: dict[str, deque[Event]] = defaultdict(deque)
        self._floor: dict[str, int] = defaultdict(int)  # rv of the newest forgotten event
        self.listeners: list[Listener] = []

    # --- reading ------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def lookup(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._objects[rt.storage_key].get((self._ns(rt, namespace), name))

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.lookup(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def list(self, rt: ResourceType, namespace: str | None,
             predicate: Predicate | None = None) -> tuple[list[dict[str, Any]], int]:
        """Matching objects sorted by namespace and name (etcd key order), and the list's rv."""
        with self.lock:
            objects = self._objects[rt.storage_key]
            keys = sorted(k for k in objects if not namespace or k[0] == namespace)
            items = [objects[k] for k in keys if predicate is None or predicate(objects[k])]
            return items, self._rv

    def events_since(self, storage_key: str, rv: int) -> list[Event] | None:
        """A resource's events after `rv`, or None if they are no longer all known (410)."""
        with self.lock:
            if rv < self._floor[storage_key]:
                return None
            result = []
            for event in reversed(self._history[storage_key]):
                if event.rv <= rv:
                    break
                result.append(event)
            result.reverse()
            return result

    def compact(self) -> None:
        """Forget all watch history, as etcd compaction does: older versions then get 410."""
        with self.lock:
            for key in list(self._history):
                self._history[key].clear()
                self._floor[key] = self._rv

    # --- writing ------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None,
               body: dict[str, Any]) -> dict[str, Any]:
        obj = clone(body)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        with self.lock:
            namespace = self._namespace_for_create(rt, namespace, meta)
            meta["name"] = meta.get("name") or self._generate_name(rt, namespace, meta)
            if self.lookup(rt, namespace, meta["name"]) is not None:
                raise errors.already_exists(rt.plural, rt.group, meta["name"])
            self._init_metadata(rt, namespace, meta)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if rt.has_status:
                obj.pop("status", None)
            apply_create_defaults(rt, obj)
            obj = self._admit(rt, obj, None)
            meta = obj["metadata"]
            meta["resourceVersion"] = str(self._next_rv())
            self._put(rt, obj, None)
            self._emit("ADDED", rt, obj, None)
            return obj

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: dict[str, Any],
                subresource: str | None = None) -> dict[str, Any]:
        with self.lock:
            old = self.get(rt, namespace, name)
            meta = body.get("metadata") or {}
            if meta.get("name", name) != name:
                raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not "
                                         f"match the name on the URL ({name})")
            self._check_version(rt, old, meta.get("resourceVersion"), required=rt.custom)
            return self._commit(rt, old, self._compose(rt, old, clone(body), subresource))

    def patch(self, rt: ResourceType, namespace: str | None, name: str, patch: Any,
              content_type: str, subresource: str | None = None) -> dict[str, Any]:
        with self.lock:
            old = self.lookup(rt, namespace, name)
            if old is None and content_type == APPLY and not subresource and \
                    isinstance(patch, dict):
                meta = {**(patch.get("metadata") or {}), "name": name}
                return self.create(rt, namespace, {**patch, "metadata": meta})
            if old is None:
                raise errors.not_found(rt.plural, rt.group, name)
            candidate = apply_patch(old, patch, content_type)
            version = (candidate.get("metadata") or {}).get("resourceVersion")
            self._check_version(rt, old, version, required=False)
            return self._commit(rt, old, self._compose(rt, old, candidate, subresource))

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *,
               propagation: str | None = None,
               preconditions: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """Delete or mark for deletion; returns the last state and whether it is gone."""
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"unsupported propagationPolicy: {propagation!r}")
        with self.lock:
            obj = self.get(rt, namespace, name)
            for key in ("uid", "resourceVersion"):
                wanted = (preconditions or {}).get(key)
                if wanted and wanted != obj["metadata"].get(key):
                    raise errors.conflict(rt.plural, rt.group, name)
            return self._delete(rt, obj, propagation or rt.default_propagation)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    # --- internals: metadata ------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _ns(self, rt: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if rt.namespaced else ""

    def _key(self, rt: ResourceType, obj: dict[str, Any]) -> ObjKey:
        meta = obj["metadata"]
        return rt.storage_key, meta.get("namespace", ""), meta["name"]

    def _namespace_for_create(self, rt: ResourceType, namespace: str | None,
                              meta: dict[str, Any]) -> str:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        in_body = meta.get("namespace")
        if namespace and in_body and in_body != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        namespace = namespace or in_body
        if not namespace:
            raise errors.bad_request("the namespace is required for a namespaced resource")
        self._ensure_namespace(namespace)
        meta["namespace"] = namespace
        return namespace

    def _ensure_namespace(self, namespace: str) -> None:
        ns_type = self.registry.get("", "v1", "namespaces")
        assert ns_type is not None
        existing = self.lookup(ns_type, None, namespace)
        if existing is not None and existing["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, f"unable to create new content in namespace {namespace} "
                                       "because it is being terminated")
        if existing is None and not self.auto_namespaces:
            raise errors.not_found("namespaces", "", namespace)
        if existing is None:
            self.create(ns_type, None, {"metadata": {"name": namespace}})

    def _generate_name(self, rt: ResourceType, namespace: str, meta: dict[str, Any]) -> str:
        prefix = meta.get("generateName")
        if not prefix:
            raise errors.invalid(rt.kind, rt.group, "", [errors.cause(
                "metadata.name", "Required value: name or generateName is required",
                "FieldValueRequired")])
        prefix = prefix[: rt.max_name_length - 5]
        while True:
            name = prefix + "".join(random.choices(NAME_ALPHABET, k=5))
            if self.lookup(rt, namespace, name) is None:
                return name

    def _init_metadata(self, rt: ResourceType, namespace: str, meta: dict[str, Any]) -> None:
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "managedFields"):
            meta.pop(key, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=timestamp(), generation=1)
        if rt.namespaced:
            meta["namespace"] = namespace

    def _check_version(self, rt: ResourceType, old: dict[str, Any], version: str | None,
                       required: bool) -> None:
        if version and version != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, old["metadata"]["name"])
        if required and not version:
            raise errors.invalid(rt.kind, rt.group, old["metadata"]["name"], [errors.cause(
                "metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")])

    def _compose(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any],
                 subresource: str | None) -> dict[str, Any]:
        """Keep what this endpoint may not change: the status on the main resource, or all but
        the status on /status; server-managed metadata everywhere. `new` is a fresh top-level
        dict whose branches may be shared with `old` (a merge patch): never mutate below it."""
        if subresource == "status" and rt.has_status:
            composed = {k: v for k, v in old.items() if k != "status"}
            if new.get("status") is not None:
                composed["status"] = new["status"]
            return composed
        if subresource:
            raise errors.not_found(f"{rt.plural}/{subresource}", rt.group, old["metadata"]["name"])
        if rt.has_status:
            new.pop("status", None)
            if "status" in old:
                new["status"] = old["status"]
        meta = new.get("metadata")
        meta = new["metadata"] = dict(meta) if isinstance(meta, dict) else {}
        for key in SERVER_FIELDS:
            meta.pop(key, None)
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        return new

    def _admit(self, rt: ResourceType, obj: dict[str, Any],
               old: dict[str, Any] | None) -> dict[str, Any]:
        """Validate (422) and normalise an object about to be stored."""
        meta = obj["metadata"]
        causes = validate_name(rt, meta["name"]) if old is None else []
        causes += validate_metadata(meta) + validate_kind(rt, obj, old)
        checker = checker_for(rt)
        if checker is not None:
            obj = checker.normalize(obj, old)
            causes += checker.check(obj, old)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old["metadata"].get("finalizers") or ())
            if added:
                causes.append(errors.cause("metadata.finalizers", "Forbidden: no new finalizers "
                                           "can be added if the object is being deleted"))
        if causes:
            raise errors.invalid(rt.kind, rt.group, meta["name"], causes)
        if len(json.dumps(obj)) > MAX_OBJECT_BYTES:
            raise errors.ApiError(500, "etcdserver: request is too large")
        return obj

    # --- internals: committing ----------------------------------------------------------------

    def _commit(self, rt: ResourceType, old: dict[str, Any],
                new: dict[str, Any]) -> dict[str, Any]:
        new["metadata"] = dict(new["metadata"])
        new = self._admit(rt, new, old)
        meta = new["metadata"]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        spec_old = {k: v for k, v in old.items() if k not in NOT_SPEC}
        spec_new = {k: v for k, v in new.items() if k not in NOT_SPEC}
        if spec_old != spec_new:
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        meta["resourceVersion"] = str(self._next_rv())
        self._put(rt, new, old)
        self._emit("MODIFIED", rt, new, old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rt, new)
        return new

    def _put(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        key = self._key(rt, obj)
        self._objects[rt.storage_key][key[1:]] = obj
        self._uids[obj["metadata"]["uid"]] = key
        for uid in _owner_uids(old) - _owner_uids(obj):
            self._dependents[uid].discard(key)
        for uid in _owner_uids(obj):
            self._dependents[uid].add(key)

    def _emit(self, kind: str, rt: ResourceType, obj: dict[str, Any],
              old: dict[str, Any] | None) -> None:
        event = Event(int(obj["metadata"]["resourceVersion"]), kind, rt.storage_key, obj, old)
        history = self._history[rt.storage_key]
        if len(history) >= self.history_limit:
            self._floor[rt.storage_key] = history.popleft().rv
        history.append(event)
        if rt.storage_key == CRDS:
            self._register_crd(event)
        for listener in list(self.listeners):
            listener(event)

    def _register_crd(self, event: Event) -> None:
        spec = event.obj["spec"]
        self.registry.remove_crd(spec["group"], spec["names"]["plural"])
        if event.type != "DELETED":
            for rt in types_from_crd(event.obj):
                self.registry.add(rt)

    # --- internals: deletion and garbage collection -------------------------------------------

    def _delete(self, rt: ResourceType, obj: dict[str, Any],
                policy: str) -> tuple[dict[str, Any], bool]:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj, False
        if policy == "Orphan":
            self._orphan_dependents(obj)
        finalizers = list(meta.get("finalizers") or ())
        foreground = policy == "Foreground" and bool(self._dependents.get(meta["uid"]))
        if foreground:
            finalizers.append("foregroundDeletion")
        if not finalizers:
            return self._remove(rt, obj), True
        marked = {**obj, "metadata": {**meta, "deletionTimestamp": timestamp(),
                                      "deletionGracePeriodSeconds": 0, "finalizers": finalizers,
                                      "generation": meta.get("generation", 1) + 1,
                                      "resourceVersion": str(self._next_rv())}}
        self._put(rt, marked, obj)
        self._emit("MODIFIED", rt, marked, obj)
        if foreground:
            key = self._key(rt, marked)
            self._foreground.add(key)
            self._delete_dependents(meta["uid"], "Foreground")
            self._release_foreground(key)
        return self._stored(self._key(rt, marked)) or marked, False

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        key = self._key(rt, obj)
        current = self._objects[rt.storage_key].pop(key[1:])
        uid = current["metadata"]["uid"]
        self._uids.pop(uid, None)
        self._foreground.discard(key)
        for owner in _owner_uids(current):
            self._dependents[owner].discard(key)
        gone = {**current, "metadata": {**current["metadata"],
                                        "resourceVersion": str(self._next_rv())}}
        self._emit("DELETED", rt, gone, current)
        self._delete_dependents(uid, "Background")
        for owner in _owner_uids(current):
            owner_key = self._uids.get(owner)
            if owner_key in self._foreground:
                self._release_foreground(owner_key)
        if (rt.group, rt.plural) == ("", "namespaces"):
            self._empty_namespace(key[2])
        return gone

    def _delete_dependents(self, owner_uid: str, policy: str) -> None:
        """The garbage collector: a dependent goes once none of its owners exists any more."""
        for key in sorted(self._dependents.pop(owner_uid, set()) if policy == "Background"
                          else set(self._dependents.get(owner_uid, set()))):
            dependent = self._stored(key)
            if dependent is None:
                continue
            rt = self._type_of(key)
            live = [ref for ref in dependent["metadata"].get("ownerReferences", ())
                    if ref.get("uid") in self._uids and ref.get("uid") != owner_uid]
            if live and policy == "Background":
                self._drop_owner_refs(rt, dependent, owner_uid)
            else:
                self._delete(rt, dependent, policy)

    def _release_foreground(self, key: ObjKey) -> None:
        owner = self._stored(key)
        if owner is None or self._dependents.get(owner["metadata"]["uid"]):
            return
        self._foreground.discard(key)
        finalizers = [f for f in owner["metadata"].get("finalizers", ())
                      if f != "foregroundDeletion"]
        released = {**owner, "metadata": {**owner["metadata"], "finalizers": finalizers}}
        self._commit(self._type_of(key), owner, released)

    def _orphan_dependents(self, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for key in sorted(self._dependents.pop(uid, set())):
            dependent = self._stored(key)
            if dependent is not None:
                self._drop_owner_refs(self._type_of(key), dependent, uid)

    def _drop_owner_refs(self, rt: ResourceType, obj: dict[str, Any], uid: str) -> None:
        refs = [r for r in obj["metadata"].get("ownerReferences", ()) if r.get("uid") != uid]
        self._commit(rt, obj, {**obj, "metadata": {**obj["metadata"], "ownerReferences": refs}})

    def _empty_namespace(self, namespace: str) -> None:
        for storage_key, objects in list(self._objects.items()):
            for ns, name in sorted(k for k in objects if k[0] == namespace):
                dependent = self._stored((storage_key, ns, name))
                if dependent is not None:
                    self._delete(self._type_of((storage_key, ns, name)), dependent, "Background")

    def _stored(self, key: ObjKey) -> dict[str, Any] | None:
        return self._objects[key[0]].get(key[1:])

    def _type_of(self, key: ObjKey) -> ResourceType:
        for rt in self.registry.all():
            if rt.storage_key == key[0]:
                return rt
        raise KeyError(key[0])


def _owner_uids(obj: dict[str, Any] | None) -> set[str]:
    if obj is None:
        return set()
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or () if ref.get("uid")}
