"""One Lease with resourceVersion checks, as the API server keeps it, shared by the replicas'
electors in the leader and controller tests (L1-L3)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

from stepflow.operator.runtime.api import Conflict, NotFound


class LeaseApi:
    """Thread-safe: the controller tests run electors in threads."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.lock = threading.Lock()

    def request_once(self, method: str, path: str, *, body: Any = None,
                     timeout: Any = None) -> dict[str, Any]:
        with self.lock:
            if self.down:
                raise OSError("connection refused")
            if method == "GET":
                if self.lease is None:
                    raise NotFound(path)
                return copy.deepcopy(self.lease)
            if method == "POST" and self.lease is not None:
                raise Conflict("exists")
            if method == "PUT" and body["metadata"].get("resourceVersion") != str(self.version):
                raise Conflict("changed")
            self.version += 1
            self.lease = copy.deepcopy(body)
            self.lease["metadata"]["resourceVersion"] = str(self.version)
            return copy.deepcopy(self.lease)

    def stream(self, path: str, **_: Any) -> Iterator[str]:
        """A watch that shows nothing: the standby then checks at its retry period."""
        time.sleep(0.05)
        yield from ()

    def holder(self) -> str | None:
        with self.lock:
            return None if self.lease is None else self.lease["spec"]["holderIdentity"]
