"""The operator's view of the cluster, fed by kopf's watch events (an informer cache).

Reconciles read from here instead of listing the API each time. The cache
never goes backwards: a watch event older than a write's response (which
the operator stores at once) is ignored.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # namespace, workflow name


def _version(obj: Mapping[str, Any]) -> int | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _newer(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Strictly newer; unknown versions count as newer, to stay on the safe side."""
    if old is None:
        return True
    a, b = _version(new), _version(old)
    return a is None or b is None or a > b


def _uid(obj: Mapping[str, Any] | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("uid", "")


def _job_signature(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a Job the reconcile reads: its finishing conditions and attempt counters."""
    status = job.get("status") or {}
    conditions = tuple(sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or ()))
    deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
    return conditions, status.get("failed"), status.get("succeeded"), deleting


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workflows: dict[Key, dict[str, Any]] = {}
        self._jobs: dict[Key, dict[str, dict[str, Any]]] = defaultdict(dict)

    def put_workflow(self, body: Mapping[str, Any]) -> bool:
        """Store a newer version; False if we have it already (e.g. our own write's echo)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self._lock:
            if not _newer(body, self._workflows.get(key)):
                return False
            self._workflows[key] = dict(body)
            return True

    def drop_workflow(self, key: Key, uid: str = "") -> None:
        """Forget a deleted workflow and its Jobs, unless the cache already holds a newer object
        of that name: kopf handles each object's events in its own task, keyed by uid, so the
        deletion of one can be processed after the creation of the next."""
        with self._lock:
            if uid and _uid(self._workflows.get(key)) not in ("", uid):
                return
            self._workflows.pop(key, None)
            self._jobs.pop(key, None)

    def workflow(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._workflows.get(key)

    def workflow_phases(self) -> list[str]:
        with self._lock:
            return [(w.get("status") or {}).get("phase", "Pending") for w in self._workflows.values()]

    def put_job(self, key: Key, job: Mapping[str, Any]) -> bool:
        """Store a newer version; True if it differs in what a reconcile reads."""
        name = job["metadata"]["name"]
        with self._lock:
            old = self._jobs[key].get(name)
            if not _newer(job, old):
                return False
            self._jobs[key][name] = dict(job)
            return old is None or _job_signature(old) != _job_signature(job)

    def drop_job(self, key: Key, name: str, uid: str = "") -> None:
        """Forget a Job, unless the cache holds a newer one of that name (see drop_workflow)."""
        with self._lock:
            jobs = self._jobs.get(key, {})
            if uid and _uid(jobs.get(name)) not in ("", uid):
                return
            jobs.pop(name, None)

    def jobs(self, key: Key) -> dict[str, dict[str, Any]]:
        """Jobs of one workflow, by Job name."""
        with self._lock:
            return dict(self._jobs.get(key, {}))
