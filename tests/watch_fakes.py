"""The runtime's side of the watch handlers, faked: what was woken and which kinds were listed
(tests/operator/test_watch_events.py, test_child_watches.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from stepflow.operator.pools import Pools
from stepflow.operator.store import Store


class FakeController:
    """The runtime's side: what was woken, and the kinds of listed objects."""

    def __init__(self) -> None:
        self.woken: list[tuple[str, str]] = []
        self.kinds_listed: list[str] = []

    def wake(self, key: tuple[str, str]) -> None:
        self.woken.append(key)

    def listed(self, kind: str) -> None:
        self.kinds_listed.append(kind)


def operator() -> Any:
    """The parts of an Operator that watch events touch."""
    return SimpleNamespace(store=Store(), controller=FakeController(),
                           reconciler=SimpleNamespace(pools=Pools()))
