"""The record stage: what a status write sends."""

from __future__ import annotations

import pytest

from scripted_api import KEY, setup
from stepflow.operator.record import merge_patch


def test_merge_patch_carries_only_changes_and_nulls_removals():
    old = {"phase": "Running", "steps": {"a": {"phase": "Running"}, "b": {"phase": "Pending"}},
           "message": "x"}
    new = {"phase": "Running", "steps": {"a": {"phase": "Succeeded"}, "b": {"phase": "Pending"}}}
    assert merge_patch(old, new) == {"steps": {"a": {"phase": "Succeeded"}}, "message": None}
    assert merge_patch(new, new) == {}


class Events:
    def __init__(self) -> None:
        self.posted: list[str] = []

    def record(self, body, kind: str, reason: str, message: str, closing: bool = False) -> None:
        self.posted.append(reason)

    def record_routine(self, body, reason: str, step: str, verb: str) -> None:
        self.posted.append(reason)


def test_events_are_posted_only_after_the_status_write_they_describe():
    reconciler, api, _ = setup([{"name": "a", "script": "true"}])
    events = Events()
    reconciler.recorder.events = events  # type: ignore[assignment]

    def refused(*args, **kwargs):
        raise RuntimeError("the API server is down")

    api.patch_status = refused  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        reconciler.reconcile(KEY)
    assert events.posted == []  # retried later: posting now would post them twice
    del api.patch_status
    reconciler.reconcile(KEY)
    assert events.posted == ["StepStarted"]
