"""Events go through a bounded queue: a burst drops the excess, and says so without a flood."""

from __future__ import annotations

import logging
import threading

from stepflow.operator import events
from stepflow.operator.events import EventRecorder

WORKFLOW = {"metadata": {"name": "wf", "namespace": "default", "uid": "u"}}


def test_a_full_queue_drops_events_and_logs_once_per_thousand(monkeypatch, caplog):
    monkeypatch.setattr(events, "QUEUE_SIZE", 10)
    release = threading.Event()
    posted = []

    def slow_post(event):
        release.wait(10)
        posted.append(event)

    recorder = EventRecorder(slow_post)
    with caplog.at_level(logging.WARNING, logger="stepflow.operator.events"):
        for i in range(2011):
            recorder.record(WORKFLOW, "Normal", "StepStarted", f"step {i}")
    release.set()
    recorder.close()
    assert recorder.dropped >= 2000  # 10 queued, one being posted
    warnings = [r for r in caplog.records if "event queue full" in r.getMessage()]
    assert 2 <= len(warnings) <= 3
    assert "dropped so far" in warnings[-1].getMessage()
    assert 10 <= len(posted) <= 11
