"""The work queue: one reconcile per workflow at a time, bursts collapsed, failures retried."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from stepflow.operator.runtime.workqueue import WorkQueue


class Recorder:
    def __init__(self, work: float = 0.05, fail_times: int = 0):
        self.work, self.fail_times = work, fail_times
        self.calls: list[tuple[str, float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, key: str) -> None:
        start = time.monotonic()
        time.sleep(self.work)
        with self.lock:
            self.calls.append((key, start, time.monotonic()))
            if self.fail_times:
                self.fail_times -= 1
                raise RuntimeError("the API said no")


async def run_queue(recorder: Recorder, scenario, settle: float = 0.5) -> None:
    with ThreadPoolExecutor(4) as executor:
        queue = WorkQueue(recorder, workers=4, executor=executor)
        task = asyncio.create_task(queue.run())
        await asyncio.sleep(0)
        await scenario(queue)
        await asyncio.sleep(settle)
        task.cancel()


def test_one_key_is_never_reconciled_twice_at_once_and_bursts_collapse():
    recorder = Recorder(work=0.05)

    async def burst(queue):
        for _ in range(20):
            queue.add("team-a/deploy")
            await asyncio.sleep(0.005)

    asyncio.run(run_queue(recorder, burst))
    spans = sorted((s, e) for _, s, e in recorder.calls)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert 2 <= len(spans) <= 10  # 20 events collapse into a few reconciles; the last is never lost


def test_different_keys_run_in_parallel():
    recorder = Recorder(work=0.2)

    async def two(queue):
        queue.add("a")
        queue.add("b")

    asyncio.run(run_queue(recorder, two))
    (_, a_start, a_end), (_, b_start, b_end) = sorted(recorder.calls)
    assert a_start < b_end and b_start < a_end  # overlapping


def test_a_failing_reconcile_is_retried_with_growing_delays():
    recorder = Recorder(work=0.0, fail_times=3)

    async def once(queue):
        queue.add("flaky")

    asyncio.run(run_queue(recorder, once, settle=2.5))
    starts = [s for _, s, _ in recorder.calls]
    assert len(starts) == 4  # three failures, then success, then quiet
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] < gaps[1] < gaps[2]


def test_a_delayed_add_waits_and_an_earlier_one_wins():
    recorder = Recorder(work=0.0)

    async def delayed(queue):
        queue.add("timeout", delay=2.0)
        queue.add("timeout", delay=0.3)

    began = time.monotonic()
    asyncio.run(run_queue(recorder, delayed, settle=0.6))
    assert len(recorder.calls) == 1
    assert 0.25 <= recorder.calls[0][1] - began < 1.5
