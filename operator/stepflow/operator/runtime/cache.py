"""The rules every informer-style cache keeps, whatever it caches, and when a listing is over.

What a controller caches, and how it indexes it, is its own business (stepflow's is
:mod:`stepflow.operator.store`). These rules are not:

* the cache never goes backwards: an object replaces the cached one only if its
  resourceVersion is newer (a watch event older than a write's response is ignored);
* a deletion names the uid it deleted, so it cannot drop a newer object of the same name;
* kopf lists every kind at start and again after each watch gap (a 410 Gone), as events of
  type None, and sends no DELETED event for what went meanwhile. So each listing is
  bookkept (:class:`Relists`): what the cache held when it began and the listing has not
  shown is, at its end, suspect, to be confirmed gone with a read. No event marks the end of
  a listing; it is over once no listed object has come for ``LISTING_QUIET`` seconds
  (:class:`Listings`), which is also when a new replica's cache counts as warm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

LISTING_QUIET = 5.0  # seconds without a listed object after which a (re-)listing is over


def version(obj: Mapping[str, Any]) -> int | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def newer(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Strictly newer; unknown versions count as newer, to stay on the safe side."""
    if old is None:
        return True
    a, b = version(new), version(old)
    return a is None or b is None or a > b


def uid_of(obj: Mapping[str, Any] | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("uid", "")


def replaced(cached: Mapping[str, Any] | None, uid: str) -> bool:
    """The cache holds another object of the name than the deleted ``uid``: keep it."""
    return bool(uid) and uid_of(cached) not in ("", uid)


class Relists:
    """Per kind, what the cache held when a listing began and the listing has not shown yet.

    Not locked: the cache calls it under its own lock, since ``members`` reads its contents.
    """

    def __init__(self) -> None:
        self._unlisted: dict[str, set[Hashable]] = {}

    def listed(self, kind: str, member: Hashable, members: Callable[[], Iterable[Hashable]]) -> bool:
        """A listed object; True if it starts a listing (then ``members`` is what is cached)."""
        started = kind not in self._unlisted
        if started:
            self._unlisted[kind] = set(members())
        self._unlisted[kind].discard(member)
        return started

    def end(self, kind: str) -> set[Any]:
        """What the listing did not show; each listing is judged once."""
        return self._unlisted.pop(kind, set())


class Listings:
    """When listings are over: ``over(kind)`` is called on the event loop once a kind has had
    no listed object for ``quiet`` seconds."""

    def __init__(self, over: Callable[[str], None] | None = None, quiet: float = LISTING_QUIET,
                 clock: Callable[[], float] = time.monotonic):
        self.over = over
        self.quiet = quiet
        self._clock = clock
        self.last_listed = clock()  # when the last listed object came, of any kind
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def note(self, kind: str) -> None:
        """A listed object of ``kind`` (called on the event loop)."""
        self.last_listed = self._clock()
        timer = self._timers.get(kind)
        if timer is not None:
            timer.cancel()
        self._timers[kind] = asyncio.get_running_loop().call_later(self.quiet, self._end, kind)

    def _end(self, kind: str) -> None:
        self._timers.pop(kind, None)
        if self.over is not None:
            self.over(kind)

    async def settled(self, poll: float = 1.0) -> None:
        """Return once no listed object has come for ``quiet`` seconds: the first listings are
        in the cache."""
        while True:
            await asyncio.sleep(poll)
            if self._clock() - self.last_listed >= self.quiet:
                return

    def cancel(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
