"""What a re-listing did not show is forgotten only once a read confirms it is gone, and its
workflow is reconciled then (mirror: operator/relist.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from stepflow.operator.relist import confirm_gone, listed, listing_over
from stepflow.operator.store import Store

KEY, GONE, FLAKY = ("ns", "wf"), ("ns", "gone"), ("ns", "flaky")


class Controller:
    """Runs what is submitted at once, and records what is woken."""

    def __init__(self) -> None:
        self.woken: list[tuple[str, str]] = []
        self.submitted = 0
        self.executor = SimpleNamespace(submit=self.submit)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.submitted += 1
        fn(*args)

    def wake(self, key: tuple[str, str]) -> None:
        self.woken.append(key)

    def listed(self, kind: str) -> None:
        pass


class Reconciler:
    """confirm_gone as the API would answer it: gone, still there, or a failed read."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def confirm_gone(self, kind: str, key: tuple[str, str], name: str = "") -> bool:
        if key == FLAKY:
            raise OSError("connection reset")
        if key == GONE:
            self.store.drop_workflow(key)
            return True
        return False


def operator() -> Any:
    store = Store()
    for key in (KEY, GONE, FLAKY):
        store.put_workflow({"metadata": {"namespace": key[0], "name": key[1], "resourceVersion": "1"}})
    return SimpleNamespace(store=store, controller=Controller(), reconciler=Reconciler(store))


def test_what_the_listing_did_not_show_is_confirmed_and_only_the_gone_is_reconciled(caplog):
    ops = operator()
    listed(ops, "workflows", KEY)
    with caplog.at_level(logging.INFO, logger="stepflow.operator.relist"):
        listing_over(ops, "workflows")
    assert ops.controller.woken == [GONE]
    assert ops.store.workflow(GONE) is None and ops.store.workflow(FLAKY) is not None
    messages = [r.getMessage() for r in caplog.records]
    assert "a re-list of workflows did not show 2 cached object(s); confirming they are gone" in messages
    assert "could not confirm that workflows ns/flaky is gone: connection reset" in messages


def test_a_listing_that_showed_everything_reads_nothing():
    ops = operator()
    for key in (KEY, GONE, FLAKY):
        listed(ops, "workflows", key)
    listing_over(ops, "workflows")
    assert ops.controller.submitted == 0 and ops.controller.woken == []


def test_a_failed_read_does_not_stop_the_others():
    ops = operator()
    confirm_gone(ops, "workflows", {(FLAKY, ""), (GONE, "")})
    assert ops.controller.woken == [GONE]
