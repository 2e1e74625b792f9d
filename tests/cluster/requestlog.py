"""Every API request with its verb, resource, status code and timing.

Benchmarks count requests per verb and resource (the "API writes per step" target); tests assert
e.g. "exactly one POST per Job" or "no PUT at all". Records are appended when a request arrives,
so open watch streams are counted too; `status` and `duration` are filled in when it ends.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .routes import Route

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class Record:
    method: str
    path: str
    query: dict[str, str]
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection, discovery...
    group: str | None
    resource: str | None  # the plural, e.g. "jobs"
    namespace: str | None
    name: str | None
    subresource: str | None
    started: float = field(default_factory=time.time)
    status: int | None = None
    duration: float | None = None
    fault: bool = False  # answered by an injected fault
    user_agent: str = ""

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + query if query else ''} -> {self.status}"


class RequestLog:
    def __init__(self, limit: int = 200_000) -> None:
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self.limit = limit  # the oldest half is dropped beyond this, for long benchmarks

    def start(self, route: Route, user_agent: str = "") -> Record:
        record = Record(route.method, route.path, dict(route.query), route.verb, route.group,
                        route.plural, route.namespace, route.name, route.subresource,
                        user_agent=user_agent)
        with self._lock:
            self._records.append(record)
            if len(self._records) > self.limit:
                del self._records[: len(self._records) // 2]
        return record

    def filter(self, *, path: str | re.Pattern[str] | None = None, since: float | None = None,
               **fields: Any) -> list[Record]:
        """Records whose attributes equal the given ones, e.g. verb="create", resource="jobs";
        `path` is a regex searched in the path, `since` a time.time() lower bound."""
        with self._lock:
            records = list(self._records)
        pattern = re.compile(path) if isinstance(path, str) else path
        return [r for r in records
                if all(getattr(r, key) == value for key, value in fields.items())
                and (pattern is None or pattern.search(r.path))
                and (since is None or r.started >= since)]

    def count(self, **filters: Any) -> int:
        return len(self.filter(**filters))

    def writes(self, **filters: Any) -> list[Record]:
        return [r for r in self.filter(**filters) if r.is_write]

    def summary(self, **filters: Any) -> Counter[str]:
        """Counts keyed "verb resource[/subresource]", e.g. {"patch workflows/status": 3}."""
        return Counter(
            f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}"
            if r.resource else f"{r.verb} {r.path}"
            for r in self.filter(**filters))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.filter())
