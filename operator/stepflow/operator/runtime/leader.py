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

from stepflow.operator.runtime.api import Client, Conflict, NotFound

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
        # The Lease holds whole seconds: a standby counts int(lease_duration).
        if not int(self.lease_duration) > self.renew_deadline:
            found.append("the lease duration (whole seconds) must be longer than the renew deadline")
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

    def __init__(self, api: Client, settings: LeaseSettings, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.api = api
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.leading = False
        self._fenced = False  # for good: a fenced elector never writes again (release, loss)
        self._release_due = False  # fenced for a graceful stop while holding the Lease
        self._last_renew = -float("inf")  # clock() of the last successful acquire or renew
        self._observed: tuple[Any, ...] | None = None  # the other holder's record, as last seen
        self._observed_at = 0.0
        self._lock = threading.Lock()
        self._turn = threading.Lock()  # one Lease operation at a time: renewals, the release
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
        """Refuse every write from now on, for good (the lease is lost, or being released)."""
        with self._lock:
            self.leading = False
            self._fenced = True

    def fence_for_release(self) -> None:
        """A graceful stop begins: no write from now on, and the Lease is handed over later by
        :meth:`release`, once what is in flight has ended."""
        held = self.may_write()
        self.fence()
        self._release_due = self._release_due or held

    def try_acquire_or_renew(self) -> bool:
        """One attempt, as client-go's tryAcquireOrRenew: True if we hold the Lease now."""
        with self._turn:
            return self._try_acquire_or_renew()

    def _try_acquire_or_renew(self) -> bool:
        # The renewal counts from before the request: a standby may see the new renewTime
        # before our response arrives, and counts its lease duration from then.
        started = self.clock()
        me, now = self.settings.identity, self.wall()
        timeout = (self.settings.retry_period, self.settings.retry_period)
        try:
            lease = self.api.request_once("GET", f"{self.path}/{self.settings.name}", timeout=timeout)
        except NotFound:
            lease = None
        if lease is None:
            body = self._lease_body(None, me, now)
            try:
                self.api.request_once("POST", self.path, body=body, timeout=timeout)
            except Conflict:
                return False  # another replica created it first
            return self._renewed(started)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder != me:
            record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if holder and (self._observed is None or self._observed[0] != holder):
                log.info("standing by: the lease is held by %s", holder)
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
        return self._renewed(started)

    def _renewed(self, started: float) -> bool:
        with self._lock:
            if self._fenced:
                return False  # a renewal that was in flight when we fenced changes nothing
            self._last_renew = started
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
        self.fence_for_release()
        if not self._release_due:
            return
        timeout = (self.settings.retry_period, self.settings.retry_period)
        with self._turn:
            self._release(timeout)

    def _release(self, timeout: tuple[float, float]) -> None:
        try:
            lease = self.api.request_once("GET", f"{self.path}/{self.settings.name}", timeout=timeout)
            if (lease.get("spec") or {}).get("holderIdentity") != self.settings.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(self.wall()))
            self.api.request_once("PUT", f"{self.path}/{self.settings.name}", body=lease, timeout=timeout)
            log.info("released the lease %s/%s", self.settings.namespace, self.settings.name)
        except Exception as error:  # it expires by itself; one line says why it was not released
            log.warning("could not release the lease: %s", " ".join(str(error).split())[:300])

    async def run(self, on_started: Callable[[], None], on_lost: Callable[[], None],
                  ready: asyncio.Event | None = None) -> None:
        """Stand by until the Lease is ours, then renew it every retry period. ``on_lost`` is
        called, already fenced, once a renewal has not succeeded within the deadline. With
        ``ready``, nothing is tried before it is set (the cache has its first listing)."""
        if ready is not None:
            await ready.wait()
        while not self.leading:
            self.changed.clear()  # before the attempt: a change seen during it wakes us at once
            if await self._attempt():
                break
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
        warned = False
        while not stop.is_set():
            try:
                # A read timeout past the server's 60 s: a half-open connection is noticed.
                for _ in self.api.stream(self.path, query=query, timeout=(5, 90)):
                    loop.call_soon_threadsafe(self.changed.set)
                    if stop.is_set():
                        return
            except Exception as error:  # the watch ends or breaks; the retry period still applies
                if not warned:
                    log.warning("watching the lease failed (a standby then checks it every %.0fs): %s",
                                self.settings.retry_period, " ".join(str(error).split())[:300])
                    warned = True
                stop.wait(self.settings.retry_period)
