"""Fault injection: error answers and latency for requests matching a verb/method/path/resource.

An operator must survive 409s (conflicting writes), 429s with Retry-After (API priority and
fairness), 5xx (API server restarts) and slow answers. Rules are checked before the emulator
touches its store, so a faulted write changes nothing, as with a real server that rejected it.
Dropping watch connections lives on the Cluster (`cluster.drop_watches()`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from .errors import ApiError
from .routes import Route


@dataclass
class Fault:
    status: int | None  # None: latency only
    delay: float = 0.0
    times: int | None = 1  # how many more requests it applies to; None: until cleared
    method: str | None = None
    verb: str | None = None
    resource: str | None = None  # plural, e.g. "jobs"
    subresource: str | None = None
    path: re.Pattern[str] | None = None  # searched in the path
    retry_after: float | None = None
    message: str | None = None
    hits: int = 0

    def matches(self, route: Route) -> bool:
        return ((self.times is None or self.times > 0)
                and (self.method is None or self.method.upper() == route.method)
                and (self.verb is None or self.verb == route.verb)
                and (self.resource is None or self.resource == route.plural)
                and (self.subresource is None or self.subresource == route.subresource)
                and (self.path is None or self.path.search(route.path) is not None))

    def error(self) -> ApiError:
        assert self.status is not None
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        message = self.message or f"injected fault: HTTP {self.status}"
        return ApiError(self.status, message, headers=headers,
                        details={"retryAfterSeconds": int(self.retry_after or 0)})


class Faults:
    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def fail(self, status: int, *, times: int | None = 1, method: str | None = None,
             verb: str | None = None, resource: str | None = None,
             subresource: str | None = None, path: str | None = None,
             retry_after: float | None = None, message: str | None = None) -> Fault:
        """Answer the next `times` matching requests with `status` (None: every one)."""
        return self._add(Fault(status, 0.0, times, method, verb, resource, subresource,
                               re.compile(path) if path else None, retry_after, message))

    def delay(self, seconds: float, *, times: int | None = None, method: str | None = None,
              verb: str | None = None, resource: str | None = None,
              subresource: str | None = None, path: str | None = None) -> Fault:
        """Hold matching requests for `seconds` before serving them normally."""
        return self._add(Fault(None, seconds, times, method, verb, resource, subresource,
                               re.compile(path) if path else None))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def take(self, route: Route) -> tuple[float, ApiError | None]:
        """Consume the rules matching this request: total latency and the error, if any."""
        delay, error = 0.0, None
        with self._lock:
            for fault in self._rules:
                if (fault.status is not None and error is not None) or not fault.matches(route):
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                delay += fault.delay
                if fault.status is not None:
                    error = fault.error()
            self._rules = [f for f in self._rules if f.times is None or f.times > 0]
        return delay, error
