"""Leader election against a scripted Lease API, with clocks the tests move (L1-L3)."""

from __future__ import annotations

from typing import Any

import pytest

from lease_api import LeaseApi
from stepflow.operator.runtime.leader import LeaderElector, LeaseSettings

PATH = "/apis/coordination.k8s.io/v1/namespaces/stepflow-system/leases"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: LeaseApi, clock: Clock, identity: str) -> LeaderElector:
    settings = LeaseSettings(namespace="stepflow-system", identity=identity)
    return LeaderElector(api, settings, clock=clock, wall=clock)  # type: ignore[arg-type]


def test_one_holder_at_a_time_and_a_standby_takes_over_after_the_lease_duration():
    api, clock = LeaseApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert a.try_acquire_or_renew() and a.may_write()
    assert not b.try_acquire_or_renew() and not b.may_write()
    clock.now += 2
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # the standby sees the record change: renewed now
    clock.now += 14
    assert not b.try_acquire_or_renew()  # 14 s since it saw the last renewal: still held
    clock.now += 1.5
    assert b.try_acquire_or_renew()  # 15 s without a renewal, on b's own clock
    assert api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1
    assert not a.may_write()  # a's renewal is 15.5 s old, past its 10 s deadline


def test_a_leader_stops_writing_at_its_renew_deadline_before_anyone_may_take_over():
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, "a")
    assert a.try_acquire_or_renew()
    api.down = True  # partitioned: renewals fail
    clock.now += 9.9
    assert a.may_write()
    clock.now += 0.2
    assert not a.may_write()  # 10.1 s: fenced, whatever its renewing task is doing
    b = elector(api, clock, "b")
    api.down = False
    assert not b.try_acquire_or_renew()  # b has only just seen the record: 15 s from now


def test_a_released_lease_is_taken_at_once():
    api, clock = LeaseApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.may_write()
    assert api.lease["spec"]["holderIdentity"] == ""
    assert b.try_acquire_or_renew() and b.may_write()


def test_a_concurrent_update_loses_the_race_instead_of_overwriting():
    api, clock = LeaseApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b has seen a's record
    clock.now += 20  # a stopped renewing: b may take over
    real, puts = api.request_once, []

    def racing(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PUT":
            puts.append(path)
            api.version += 1  # somebody wrote between b's GET and its PUT
        return real(method, path, **kwargs)

    api.request_once = racing  # type: ignore[method-assign]
    assert not b.try_acquire_or_renew()
    assert puts and api.lease["spec"]["holderIdentity"] == "a"  # b tried, and lost the race


def test_a_renewal_in_flight_during_a_release_does_not_undo_the_fence():
    api, clock = LeaseApi(), Clock()
    a = elector(api, clock, "a")
    assert a.try_acquire_or_renew()
    real = api.request_once

    def sigterm_during_the_put(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if method == "PUT":
            a.fence_for_release()  # the cleanup handler runs while this renewal is under way
        return real(method, path, **kwargs)

    api.request_once = sigterm_during_the_put  # type: ignore[method-assign]
    clock.now += 2
    assert not a.try_acquire_or_renew()
    assert not a.may_write()  # the renewal's success did not lift the fence
    api.request_once = real  # type: ignore[method-assign]
    a.release()
    assert api.lease["spec"]["holderIdentity"] == ""  # still handed over


def test_every_write_attempt_checks_the_fence_and_reads_never_do(monkeypatch):
    from kubernetes.client.exceptions import ApiException

    from stepflow.operator.runtime import api as api_module
    from stepflow.operator.runtime.api import Client, NotLeader

    monkeypatch.setattr(api_module.time, "sleep", lambda _: None)
    sent, allowed = [], [True]

    def unavailable(method, path, *args):
        sent.append(method)
        allowed[0] = False  # the lease lapses while this attempt fails
        raise ApiException(status=503, reason="Service Unavailable")

    api = Client(None, may_write=lambda: allowed[0])  # type: ignore[arg-type]
    monkeypatch.setattr(api, "_open", unavailable)
    with pytest.raises(NotLeader):
        api.request("POST", "/apis/batch/v1/namespaces/n/jobs", body={})
    assert sent == ["POST"]  # the retry was refused before it was sent
    with pytest.raises(ApiException):
        api.request("GET", "/api/v1/namespaces/n/pods")  # reads are never fenced
    assert sent[-5:] == ["GET"] * 5


@pytest.mark.parametrize(("duration", "deadline", "retry", "problem"), [
    (10, 10, 2, "the lease duration (whole seconds) must be longer than the renew deadline"),
    (10.5, 10.2, 2, "the lease duration (whole seconds) must be longer than the renew deadline"),
    (15, 2, 2, "the renew deadline must be longer than the retry period"),
])
def test_client_go_rules_for_the_three_durations(duration, deadline, retry, problem):
    settings = LeaseSettings("ns", "me", lease_duration=duration, renew_deadline=deadline, retry_period=retry)
    assert problem in settings.problems()
    assert LeaseSettings("ns", "me").problems() == []
