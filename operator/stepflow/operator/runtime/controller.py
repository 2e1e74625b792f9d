"""The controller: the runtime's parts wired together, started, stopped and handed over.

One object per operator process (kopf's memo keeps it, so tests can run several). It owns the
threads reconciles run on, the API client with its write fence, the Event queue, the work
queue, the listings and, with an election, the Lease. Leading is a state of the work queue:
a standby queues keys and reconciles nothing until it holds the Lease (L1); then it asks the
caller what to reconcile first. Losing the Lease ends the process (L3); a graceful stop
fences, lets what is in flight end, and hands the Lease over (L2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, NoReturn, TypeVar

from kubernetes import client

from stepflow.operator.runtime import metrics
from stepflow.operator.runtime.api import TRANSIENT_ERRORS, Client
from stepflow.operator.runtime.cache import LISTING_QUIET, Listings
from stepflow.operator.runtime.events import GENERIC, EventRecorder, EventSource
from stepflow.operator.runtime.leader import LeaderElector, LeaseSettings
from stepflow.operator.runtime.workqueue import Handler, WorkQueue

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Client)


def exit_now(message: str, *args: Any) -> NoReturn:
    """Log why, flush the log, and end the process at once, with status 1: for states from
    which kopf's orderly stop could hang on an API that is gone, or would log a traceback."""
    log.error(message, *args)
    logging.shutdown()
    os._exit(1)


def election_ended(task: asyncio.Task[None]) -> None:
    """The election task never ends while the operator runs: if it failed, nobody renews the
    Lease and this replica could never lead again, so it exits (Kubernetes restarts it)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        exit_now("leader election failed: %s; exiting", " ".join(str(error).split())[:300])


class Controller(Generic[C]):
    """``api`` is the client reconciles write with; with an ``elector``, it is fenced by it."""

    def __init__(self, api: C, *, workers: int, elector: LeaderElector | None = None,
                 events: EventSource = GENERIC, name: str = "controller",
                 listing_quiet: float = LISTING_QUIET):
        self.api = api
        self.elector = elector
        self.name = name
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-reconcile")
        self.events = EventRecorder(api.post_event, source=events, name=f"{name}-events")
        self.listings = Listings(quiet=listing_quiet)
        self.stopping = threading.Event()
        self.queue: WorkQueue | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.warm = asyncio.Event()  # set once the first listings are in: then it contends

    @classmethod
    def connect(cls, api_client: client.ApiClient, *, client_class: Callable[..., C],
                lease: LeaseSettings | None, user_agent: str, **options: Any) -> Controller[C]:
        """Build the client (``client_class``, a :class:`Client`) and, with ``lease``, the
        elector that fences it; the User-Agent then names the replica, for the audit log."""
        elector = None
        if lease is not None:
            elector = LeaderElector(Client(api_client), lease)
            api_client.user_agent = f"{user_agent} ({lease.identity})"
        api = client_class(api_client, may_write=elector.may_write if elector else None)
        return cls(api, elector=elector, **options)

    def may_write(self) -> bool:
        """Whether this replica leads now (always, without an election)."""
        return self.elector is None or self.elector.may_write()

    def wake(self, key: Hashable) -> None:
        """Thread-safe: reconcile ``key`` soon (a standby queues it for when it leads)."""
        assert self.queue is not None, "the controller is not started"
        self.queue.add(key)

    def listed(self, kind: str) -> None:
        """kopf listed an object of ``kind`` (an event of type None), on the event loop."""
        self.listings.note(kind)

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """A background task that lives until :meth:`stop`."""
        task = asyncio.create_task(work, name=f"{self.name}-{what}")
        self._tasks.append(task)
        return task

    async def start(self, reconcile: Handler, *, take_over: Callable[[], Iterable[Hashable]],
                    listing_over: Callable[[str], None]) -> None:
        """Serve the work queue with ``reconcile``; with an election, stand by until the Lease
        is ours. ``take_over`` runs on becoming the leader, before any reconcile, and names
        every key to reconcile; ``listing_over(kind)`` runs when a listing of a kind is over.
        Returns once keys may be added."""
        self.queue = WorkQueue(reconcile, workers=self.workers, executor=self.executor,
                               transient=TRANSIENT_ERRORS, paused=self.elector is not None)
        self.listings.over = listing_over
        self.spawn(self.queue.run(), "workqueue")
        if self.elector is None:
            metrics.LEADER.set(1)
        else:
            self._stand_by(take_over)
        await asyncio.sleep(0)  # let the queue bind to this loop before the first event arrives

    def _stand_by(self, take_over: Callable[[], Iterable[Hashable]]) -> None:
        """Contend for the Lease once the cache is warm, and watch it to take over at once."""
        assert self.elector is not None
        metrics.LEADER.set(0)
        election = self.spawn(self.elector.run(lambda: self._start_leading(take_over), self._stop_leading,
                                               self.warm), "lease")
        election.add_done_callback(election_ended)
        self.spawn(self._warm_up(), "warm-up")
        threading.Thread(target=self.elector.watch, args=(asyncio.get_running_loop(), self.stopping),
                         name=f"{self.name}-lease-watch", daemon=True).start()

    async def _warm_up(self) -> None:
        """A replica contends for the Lease once kopf's first listings are in its cache. A
        leader with a cold cache would not know what already runs."""
        await self.listings.settled()
        self.warm.set()

    def _start_leading(self, take_over: Callable[[], Iterable[Hashable]]) -> None:
        """Leading: reconcile everything the caller names (level-triggered: whatever the old
        leader started is found and adopted), then whatever was queued meanwhile."""
        assert self.elector is not None and self.queue is not None
        settings = self.elector.settings
        log.info("became the leader (lease %s/%s, %s)", settings.namespace, settings.name, settings.identity)
        metrics.LEADER.set(1)
        for key in take_over():
            self.queue.add(key)
        self.queue.resume()

    def _stop_leading(self) -> None:
        """L3: the lease could not be renewed in time. Writes are fenced already; exit, so that
        a restarted process comes back as a standby with a fresh cache."""
        assert self.elector is not None
        settings = self.elector.settings
        metrics.LEADER.set(0)
        exit_now("lost the lease %s/%s: not renewed within %.0fs; stopped writing, exiting",
                 settings.namespace, settings.name, settings.renew_deadline)

    async def stop(self) -> None:
        """Stop reconciling, and with an election: fence, let what is in flight end, then hand
        the Lease over. A write refused by the fence is dropped, never sent after the hand-over."""
        self.stopping.set()
        if self.elector is not None:
            self.elector.fence_for_release()
        for task in self._tasks:
            task.cancel()
        self.listings.cancel()
        drained = asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained, timeout=5)
        await asyncio.to_thread(self.events.close)
        if self.elector is not None:
            await asyncio.to_thread(self.elector.release)
