"""A work queue in the client-go style: one reconcile per workflow at a time.

A key added while it is being processed is processed once more afterwards,
never concurrently, so Job events of one workflow cannot race each other.
Bursts of events for one key collapse into one reconcile. Failed reconciles
are retried with exponential backoff, so a broken API never causes a storm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Executor

log = logging.getLogger(__name__)
BASE_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 30.0

Handler = Callable[[Hashable], "float | None"]  # returns "call again in N seconds", or None


class WorkQueue:
    def __init__(self, handler: Handler, *, workers: int, executor: Executor,
                 transient: tuple[type[BaseException], ...] = (), paused: bool = False):
        self._handler = handler
        # A standby replica queues keys but reconciles nothing until it leads (resume()).
        self._active = asyncio.Event()
        if not paused:
            self._active.set()
        # Failures of these types (the API server's answers, dropped connections) are logged as
        # one line; anything else is a bug and is logged with its traceback.
        self._transient = transient
        self._workers = workers
        self._executor = executor
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Hashable] | None = None
        self._queued: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[Hashable, int] = {}

    def add(self, key: Hashable, delay: float = 0.0) -> None:
        """Thread-safe: schedule a reconcile of ``key`` now or after ``delay`` seconds."""
        if self._loop is None:
            raise RuntimeError("work queue is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._add(key, delay)
        else:
            self._loop.call_soon_threadsafe(self._add, key, delay)

    def _add(self, key: Hashable, delay: float) -> None:
        assert self._loop is not None and self._queue is not None
        if delay > 0:
            due = time.monotonic() + delay
            timer = self._timers.get(key)
            if timer is not None and timer[0] <= due:
                return
            if timer is not None:
                timer[1].cancel()
            self._timers[key] = (due, self._loop.call_later(delay, self._fire, key))
            return
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def resume(self) -> None:
        """Start reconciling what was queued meanwhile (called on the queue's loop)."""
        self._active.set()

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self._add(key, 0.0)

    async def run(self) -> None:
        """Serve keys until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        await self._active.wait()
        workers = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            for _, timer in self._timers.values():
                timer.cancel()

    async def _work(self) -> None:
        assert self._loop is not None and self._queue is not None
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._processing.add(key)
            again: float | None = None
            try:
                again = await self._loop.run_in_executor(self._executor, self._handler, key)
                self._failures.pop(key, None)
            except Exception as exc:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                again = min(BASE_RETRY_DELAY * 2 ** (failures - 1), MAX_RETRY_DELAY)
                message = "reconcile of %s failed (attempt %d); retrying in %.1fs"
                if isinstance(exc, self._transient):
                    log.warning(message + ": %s", key, failures, again, _one_line(exc))
                else:
                    log.exception(message, key, failures, again)
            finally:
                self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key, 0.0)
            if again is not None:
                self._add(key, again)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
