"""Events go through a bounded queue: a burst drops the excess, and says so without a flood;
routine step outcomes are gathered per workflow, and the order of what happened is kept."""

from __future__ import annotations

import logging
import threading
import time

from stepflow.operator.runtime import events
from stepflow.operator.runtime.events import EventRecorder, EventSource

WORKFLOW = {"metadata": {"name": "wf", "namespace": "default", "uid": "u"}}


def test_a_full_queue_drops_events_and_logs_once_per_thousand(monkeypatch, caplog):
    monkeypatch.setattr(events, "QUEUE_SIZE", 10)
    release = threading.Event()
    posted = []

    def slow_post(event):
        release.wait(10)
        posted.append(event)

    recorder = EventRecorder(slow_post)
    with caplog.at_level(logging.WARNING, logger="stepflow.operator.runtime.events"):
        for i in range(2011):
            recorder.record(WORKFLOW, "Normal", "StepRetried", f"step {i}")
    release.set()
    recorder.close()
    assert recorder.dropped >= 2000  # 10 queued, one being posted
    warnings = [r for r in caplog.records if "event queue full" in r.getMessage()]
    assert 2 <= len(warnings) <= 3
    assert "dropped so far" in warnings[-1].getMessage()
    assert 10 <= len(posted) <= 11


STEPS = EventSource(item="step", items="steps")  # gathered Events name a workflow's steps


def recorder_posting_to(posted: list, linger: float = 0.3) -> EventRecorder:
    return EventRecorder(posted.append, linger=linger, source=STEPS)


def test_routine_outcomes_of_a_workflow_are_gathered_into_one_event_within_the_linger():
    posted: list = []
    recorder = recorder_posting_to(posted)
    for name in ("a", "b", "c"):
        recorder.record_routine(WORKFLOW, "StepSucceeded", f'"{name}"', "succeeded")
    other = {"metadata": {"name": "other", "namespace": "default", "uid": "v"}}
    recorder.record_routine(other, "StepSucceeded", '"x"', "succeeded")
    deadline = time.monotonic() + 5
    while len(posted) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.close()
    by_workflow = {e["involvedObject"]["name"]: e for e in posted}
    assert len(posted) == 2
    assert by_workflow["wf"]["message"] == 'steps "a", "b" and "c" succeeded'
    assert by_workflow["wf"]["count"] == 3 and by_workflow["wf"]["type"] == "Normal"
    assert by_workflow["other"]["message"] == 'step "x" succeeded'


def test_an_event_of_its_own_first_posts_what_its_workflow_gathered_so_the_order_holds():
    posted: list = []
    recorder = recorder_posting_to(posted, linger=60)
    recorder.record_routine(WORKFLOW, "StepSucceeded", '"a"', "succeeded")
    recorder.record(WORKFLOW, "Warning", "StepFailed", 'step "b" failed: exit code 1')
    recorder.record_routine(WORKFLOW, "StepSucceeded", '"c"', "succeeded")
    recorder.record(WORKFLOW, "Normal", "WorkflowFailed", "b failed")
    recorder.close()
    assert [(e["reason"], e["message"]) for e in posted] == [
        ("StepSucceeded", 'step "a" succeeded'),
        ("StepFailed", 'step "b" failed: exit code 1'),
        ("StepSucceeded", 'step "c" succeeded'),
        ("WorkflowFailed", "b failed"),
    ]


def test_a_gathered_event_stays_within_the_message_limit_and_names_every_step():
    posted: list = []
    recorder = recorder_posting_to(posted, linger=60)
    names = [f'"{"s" * 60}-{i:03d}"' for i in range(100)]
    for name in names:
        recorder.record_routine(WORKFLOW, "StepSucceeded", name, "succeeded")
    recorder.close()  # posts what is still gathered
    assert len(posted) > 1
    assert all(len(e["message"]) <= 1024 for e in posted)
    assert sum(e["count"] for e in posted) == 100
    text = " ".join(e["message"] for e in posted)
    assert all(name in text for name in names)


def test_a_closing_event_tells_what_was_gathered_in_one_write():
    """A run that ends within the linger: one Event in all, naming every step once."""
    posted: list = []
    recorder = recorder_posting_to(posted, linger=60)
    for name in ("a", "b", "c"):
        recorder.record_routine(WORKFLOW, "StepStarted", f'"{name}"', "started")
    for name in ("a", "b"):
        recorder.record_routine(WORKFLOW, "StepSucceeded", f'"{name}"', "succeeded")
    recorder.record_routine(WORKFLOW, "StepSucceeded", '"c"', "succeeded")
    recorder.record(WORKFLOW, "Normal", "WorkflowSucceeded", "all 3 step(s) succeeded", closing=True)
    recorder.close()
    assert [(e["reason"], e["message"]) for e in posted] == [
        ("WorkflowSucceeded", 'all 3 step(s) succeeded: steps "a", "b" and "c" started and succeeded')]


def test_a_closing_event_names_different_steps_per_verb_and_posts_apart_what_does_not_fit():
    posted: list = []
    recorder = recorder_posting_to(posted, linger=60)
    recorder.record_routine(WORKFLOW, "StepStarted", '"b"', "started")
    recorder.record_routine(WORKFLOW, "StepSucceeded", '"a"', "succeeded")
    recorder.record(WORKFLOW, "Normal", "WorkflowSucceeded", "done", closing=True)
    long = [f'"{"s" * 60}-{i:03d}"' for i in range(13)]  # 884 characters gathered: one Event
    for name in long:
        recorder.record_routine(WORKFLOW, "StepSucceeded", name, "succeeded")
    recorder.record(WORKFLOW, "Warning", "WorkflowFailed", "x" * 200, closing=True)
    recorder.close()
    assert [(e["reason"], e["message"]) for e in posted[:1]] == [
        ("WorkflowSucceeded", 'done: step "b" started; step "a" succeeded')]
    assert [e["reason"] for e in posted[1:]] == ["StepSucceeded", "WorkflowFailed"]
    assert posted[2]["message"] == "x" * 200 and posted[1]["count"] == 13
