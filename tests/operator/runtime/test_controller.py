"""The controller: start and stop, a standby that reconciles nothing, the hand-over of the
Lease (L1-L3), against a scripted Lease API and real asyncio and threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lease_api import LeaseApi
from stepflow.operator.runtime import controller as controller_module
from stepflow.operator.runtime.controller import Controller, election_ended
from stepflow.operator.runtime.events import EventSource
from stepflow.operator.runtime.leader import LeaderElector, LeaseSettings

OBJ = {"metadata": {"name": "thing", "namespace": "default", "uid": "u"}}


class PostedEvents:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    def post_event(self, event: dict[str, Any]) -> None:
        self.posted.append(event)


class Replica:
    """A controller whose reconcile records the keys it got, in order."""

    def __init__(self, identity: str | None = None, lease_api: LeaseApi | None = None,
                 take_over: list[str] | None = None):
        self.reconciled: list[str] = []
        self.listings_over: list[str] = []
        self.took_over = 0
        self.api = PostedEvents()
        elector = None
        if identity is not None and lease_api is not None:
            settings = LeaseSettings("ns", identity, lease_duration=2, renew_deadline=0.5, retry_period=0.05)
            elector = LeaderElector(lease_api, settings)  # type: ignore[arg-type]
        self.controller = Controller(self.api, workers=2, elector=elector, name=f"test-{identity}",  # type: ignore[type-var]
                                     events=EventSource(component="test"), listing_quiet=0.1)
        self._take_over = take_over or []

    async def start(self) -> None:
        await self.controller.start(self.reconcile, take_over=self.take_over,
                              listing_over=self.listings_over.append)

    def reconcile(self, key: str) -> None:
        self.reconciled.append(key)

    def take_over(self) -> list[str]:
        self.took_over += 1
        return self._take_over


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    """Lease watch threads end with their controller's stop."""
    before = {t.name for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = {t.name for t in threading.enumerate() if t.name.endswith("lease-watch")} - before
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError(f"threads left running: {left}")


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def leader_gauge() -> float | None:
    return REGISTRY.get_sample_value("stepflow_leader")


def test_without_an_election_it_reconciles_at_once_and_a_stop_posts_what_is_gathered():
    async def main() -> Replica:
        replica = Replica()
        await replica.start()
        assert leader_gauge() == 1
        replica.controller.wake("a")
        replica.controller.wake("b")
        await until(lambda: sorted(replica.reconciled) == ["a", "b"])
        replica.controller.listed("things")
        await until(lambda: replica.listings_over == ["things"])
        replica.controller.events.record_routine(OBJ, "Done", '"x"', "done")  # gathered for 5 s
        await replica.controller.stop()
        assert all(task.done() for task in asyncio.all_tasks() if task.get_name().startswith("test-"))
        return replica

    replica = asyncio.run(main())
    assert replica.took_over == 0  # nothing to take over from
    assert [e["message"] for e in replica.api.posted] == ['item "x" done']
    assert replica.api.posted[0]["source"] == {"component": "test"}


def test_a_standby_reconciles_nothing_until_a_graceful_stop_hands_the_lease_over():
    lease = LeaseApi()

    async def main() -> Replica:
        a = Replica("a", lease, take_over=["x", "y"])
        await a.start()
        await until(lambda: a.reconciled == ["x", "y"] or a.reconciled == ["y", "x"])
        assert lease.holder() == "a" and a.controller.may_write()
        b = Replica("b", lease, take_over=["z"])
        await b.start()
        b.controller.wake("queued-meanwhile")
        await until(b.controller.warm.is_set)
        await asyncio.sleep(0.3)  # six of b's retry periods: it sees the Lease held, and waits
        assert b.reconciled == [] and b.took_over == 0 and not b.controller.may_write()
        await a.controller.stop()
        assert not a.controller.may_write()  # fenced for good
        await until(lambda: lease.holder() == "b")
        await until(lambda: sorted(b.reconciled) == ["queued-meanwhile", "z"])
        assert b.took_over == 1 and leader_gauge() == 1
        await b.controller.stop()
        return a

    a = asyncio.run(main())
    assert lease.holder() == ""  # released by b's stop too
    assert a.reconciled.count("x") == 1


def test_a_leader_that_cannot_renew_stops_writing_and_exits(monkeypatch):
    lease = LeaseApi()
    exits: list[str] = []
    monkeypatch.setattr(controller_module, "exit_now", lambda message, *args: exits.append(message % args))

    async def main() -> Replica:
        a = Replica("a", lease)
        await a.start()
        await until(lambda: a.took_over == 1)
        lease.down = True  # partitioned: every renewal fails
        await until(lambda: bool(exits))
        assert not a.controller.may_write() and leader_gauge() == 0
        await a.controller.stop()
        return a

    asyncio.run(main())
    assert exits == ["lost the lease ns/stepflow-operator: not renewed within 0s; stopped writing, exiting"]


def test_a_failed_election_ends_the_process_and_a_cancelled_one_does_not(monkeypatch):
    exits: list[str] = []
    monkeypatch.setattr(controller_module, "exit_now", lambda message, *args: exits.append(message % args))

    async def main() -> None:
        async def broken() -> None:
            raise RuntimeError("the Lease API is gone\nfor good")

        async def forever() -> None:
            await asyncio.Event().wait()

        failed, cancelled = asyncio.create_task(broken()), asyncio.create_task(forever())
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(failed, cancelled, return_exceptions=True)
        election_ended(cancelled)
        assert exits == []
        election_ended(failed)

    asyncio.run(main())
    assert exits == ["leader election failed: the Lease API is gone for good; exiting"]


def test_connect_fences_the_client_with_the_election_and_names_the_replica():
    from kubernetes import client

    from stepflow.operator.runtime.api import Client, NotLeader

    class Vocabulary(Client):
        pass

    settings = LeaseSettings("ns", "replica-1")
    api_client = client.ApiClient()
    elected = Controller.connect(api_client, client_class=Vocabulary, lease=settings,
                                 user_agent="thing-operator", workers=1)
    plain = Controller.connect(client.ApiClient(), client_class=Vocabulary, lease=None,
                               user_agent="x", workers=1)
    for controller in (elected, plain):
        controller.events.close()
    assert isinstance(elected.api, Vocabulary) and elected.elector is not None
    assert api_client.user_agent == "thing-operator (replica-1)"  # the audit log tells replicas apart
    assert not elected.may_write()
    with pytest.raises(NotLeader):  # refused before anything is sent: there is no server
        elected.api.request("POST", "/api/v1/namespaces/ns/events", body={})
    assert plain.elector is None and plain.api.may_write is None and plain.may_write()
