"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics (L1-L3).

One replica holds the Lease and renews it every retry period; the others keep their watches
and caches warm and try to take it over once it has not been renewed for a lease duration, as
measured on their own clocks from when they last saw it change. A leader that has not renewed
within the renew deadline (shorter than the lease duration) refuses every write from then on
and exits: by the time a standby may take over, the old leader has stopped writing.

Why a Lease of our own rather than kopf's peering: a Lease is what Kubernetes users and tools
expect (``kubectl get lease``, client-go's controllers, kube-controller-manager itself), it needs
RBAC on one named object only, and kopf's peering objects are a CRD of its own that pauses
rather than fences the other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepflow.operator.api import Api, Conflict, NotFound

log = logging.getLogger(__name__)
LEASE_NAME = "stepflow-operator"


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    identity: str
    name: str = LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def problems(self) -> list[str]:
        """client-go's own checks: renewals must fit in the deadline, the deadline in the lease."""
        found = []
        if not self.lease_duration > self.renew_deadline:
            found.append("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline > self.retry_period:
            found.append("the renew deadline must be longer than the retry period")
        if self.retry_period <= 0:
            found.append("the retry period must be positive")
        return found


def default_identity() -> str:
    """The pod's name (its hostname) and a random part: two processes never share one."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(ts: float) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquires, renews and releases the Lease; ``may_write`` is the fence every write checks."""

    def __init__(self, api: Api, settings: LeaseSettings, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.api = api
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.leading = False
        self._last_renew = -float("inf")  # clock() of the last successful acquire or renew
        self._observed: tuple[Any, ...] | None = None  # the other holder's record, as last seen
        self._observed_at = 0.0
        self._lock = threading.Lock()
        self.changed = asyncio.Event()  # set when a watch saw the Lease change (a standby wakes)

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.settings.namespace}/leases"

    def may_write(self) -> bool:
        """L3: only the leader writes, and only while its last renewal is within the deadline,
        whether or not the renewing task has noticed yet."""
        with self._lock:
            return self.leading and self.clock() - self._last_renew < self.settings.renew_deadline

    def fence(self) -> None:
        """Refuse every write from now on (the lease is lost, or about to be released)."""
        with self._lock:
            self.leading = False

    def try_acquire_or_renew(self) -> bool:
        """One attempt, as client-go's tryAcquireOrRenew: True if we hold the Lease now."""
        me, now = self.settings.identity, self.wall()
        timeout = (self.settings.retry_period, self.settings.retry_period)
        try:
            lease = self.api.request_once("GET", f"{self.path}/{self.settings.name}", timeout=timeout)
        except NotFound:
            lease = None
        if lease is None:
            body = self._lease_body(None, me, now)
            self.api.request_once("POST", self.path, body=body, timeout=timeout)
            return self._renewed()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder != me:
            record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if record != self._observed:
                self._observed, self._observed_at = record, self.clock()
            duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration)
            if holder and self.clock() < self._observed_at + duration:
                return False  # held by another, and renewed within its duration as we saw it
        body = self._lease_body(lease, me, now)
        try:
            self.api.request_once("PUT", f"{self.path}/{self.settings.name}", body=body, timeout=timeout)
        except Conflict:
            return False  # someone else wrote it first
        return self._renewed()

    def _renewed(self) -> bool:
        with self._lock:
            self._last_renew = self.clock()
            self.leading = True
        return True

    def _lease_body(self, lease: Mapping[str, Any] | None, me: str, now: float) -> dict[str, Any]:
        spec = dict((lease or {}).get("spec") or {})
        ours = spec.get("holderIdentity") == me
        if not ours:
            spec["acquireTime"] = micro_time(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
        spec.update(holderIdentity=me, leaseDurationSeconds=int(self.settings.lease_duration),
                    renewTime=micro_time(now))
        metadata: dict[str, Any] = {"name": self.settings.name, "namespace": self.settings.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": spec}

    def release(self) -> None:
        """A graceful stop: fence, then hand the Lease over at once (client-go's
        ReleaseOnCancel), so a standby need not wait out the lease duration."""
        held = self.may_write()
        self.fence()
        if not held:
            return
        timeout = (self.settings.retry_period, self.settings.retry_period)
        try:
            lease = self.api.request_once("GET", f"{self.path}/{self.settings.name}", timeout=timeout)
            if (lease.get("spec") or {}).get("holderIdentity") != self.settings.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(self.wall()))
            self.api.request_once("PUT", f"{self.path}/{self.settings.name}", body=lease, timeout=timeout)
            log.info("released the lease %s/%s", self.settings.namespace, self.settings.name)
        except Exception as error:  # it expires by itself; one line says why it was not released
            log.warning("could not release the lease: %s", " ".join(str(error).split())[:300])

    async def run(self, on_started: Callable[[], None], on_lost: Callable[[], None]) -> None:
        """Stand by until the Lease is ours, then renew it every retry period. ``on_lost`` is
        called, already fenced, once a renewal has not succeeded within the deadline."""
        while not self.leading:
            if await self._attempt():
                break
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), self.settings.retry_period)
        on_started()
        while True:
            await asyncio.sleep(self.settings.retry_period)
            await self._attempt()
            if not self.may_write():
                self.fence()
                on_lost()
                return

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except Exception as error:  # the API is unreachable or refuses: the next period retries
            log.warning("lease %s/%s: %s", self.settings.namespace, self.settings.name,
                        " ".join(str(error).split())[:300])
            return False

    def watch(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """In a thread: wake a standby as soon as the Lease changes (released, say), instead of
        at its next retry period."""
        query = {"watch": "true", "fieldSelector": f"metadata.name={self.settings.name}",
                 "timeoutSeconds": "60"}
        while not stop.is_set():
            try:
                for _ in self.api.stream(self.path, query=query):
                    loop.call_soon_threadsafe(self.changed.set)
                    if stop.is_set():
                        return
            except Exception:  # the watch ends or breaks; the retry period still applies
                stop.wait(self.settings.retry_period)
