"""The operator's Prometheus metrics, scraped from the real process on the real control plane
(mirror: operator/metrics.py). Each operator serves only the test's namespace, so the gauges
count this test's workflows alone."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kube.realcluster import FINISHED, step, wait_for, workflow
from operator_harness import free_port

Samples = list[tuple[str, dict[str, str], float]]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def value(samples: Samples, name: str, **labels: str) -> float | None:
    found = [v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def serving(port: int) -> Samples:
    """Wait for the operator's metrics endpoint to answer."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return scrape(port)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def typed(name: str, type_: str, duration: str = "200ms", **fields: Any) -> dict[str, Any]:
    """A step of a type (the label of its duration metric) whose pod runs ``duration``."""
    return step(name, duration, type=type_, **fields)


def test_metrics_describe_workflows_steps_slots_reconciles_and_api_errors(
    kube, fault_proxy, start_proxied
):
    port = free_port()
    start_proxied("--metrics-port", str(port), "--max-running-jobs", "2")
    before = serving(port)
    assert value(before, "stepflow_running_steps_limit") == 2
    assert value(before, "stepflow_running_steps") == 0

    fault_proxy.fail(500, "create jobs", times=2)
    started = time.monotonic()
    # mixed: [first] [p1 p2 p3] [bad] [never]; only two slots, so p3 waits for one.
    deploys = [typed(name, "deploy", duration, parallel=True)
               for name, duration in (("p1", "1s"), ("p2", "1s"), ("p3", "400ms"))]
    kube.create(workflow("mixed", [typed("first", "setup"), *deploys, typed("bad", "test", exit_code=2),
                                   typed("never", "test")]))
    kube.create(workflow("ok", [typed("s1", "build")]))
    kube.create(workflow("paused", [typed("q", "build")], suspend=True))

    busiest = 0.0
    while kube.status("mixed").get("phase") not in FINISHED:
        busiest = max(busiest, value(scrape(port), "stepflow_running_steps") or 0)
        assert busiest <= 2, "the gauge counted more running steps than the cap allows"
        assert time.monotonic() - started < 30, "mixed never finished"
        time.sleep(0.05)
    assert busiest == 2  # the deploy group filled both slots
    assert kube.wait_phase("mixed")["phase"] == "Failed"
    assert kube.wait_phase("ok")["phase"] == "Succeeded"
    kube.wait_phase("paused", ["Suspended"])
    elapsed = time.monotonic() - started

    wait_for(lambda: value(scrape(port), "stepflow_running_steps") == 0, timeout=5)
    samples = scrape(port)

    assert {phase: value(samples, "stepflow_workflows", phase=phase)
            for phase in ("Pending", "Running", "Suspended", "Succeeded", "Failed")} == {
        "Pending": 0, "Running": 0, "Suspended": 1, "Succeeded": 1, "Failed": 1}

    counts = {(ls["type"], ls["outcome"]): v for n, ls, v in samples
              if n == "stepflow_step_duration_seconds_count" and v}
    assert counts == {("setup", "Succeeded"): 1, ("deploy", "Succeeded"): 3, ("test", "Failed"): 1,
                      ("build", "Succeeded"): 1}  # never-started steps are not observed
    for (type_, outcome), count in counts.items():
        total = value(samples, "stepflow_step_duration_seconds_sum", type=type_, outcome=outcome)
        assert total is not None and 0 <= total <= count * elapsed
        inf = value(samples, "stepflow_step_duration_seconds_bucket", type=type_, outcome=outcome, le="+Inf")
        assert inf == count

    # Steps started after their prerequisites: p1, p2, p3 (p3 after a slot wait) and bad.
    waits = value(samples, "stepflow_step_wait_seconds_count")
    assert waits is not None and waits >= 4
    assert 0 <= (value(samples, "stepflow_step_wait_seconds_sum") or 0) <= waits * elapsed

    assert value(samples, "stepflow_running_steps_limit") == 2
    reconciles = value(samples, "stepflow_reconcile_duration_seconds_count")
    # Events that arrive together are coalesced, so count only the reconciles nothing can merge:
    # mixed starts first, then p1+p2, then p3 after a slot frees, then bad, then ends (5); ok
    # starts and ends (2); paused is recorded as Suspended (1).
    assert reconciles is not None and reconciles >= 8
    assert 0 < (value(samples, "stepflow_reconcile_duration_seconds_sum") or 0) < elapsed

    assert value(samples, "stepflow_api_errors_total", code="500") == 2  # both retried, then created
    assert len(kube.jobs()) == 6  # first, p1-p3, bad, s1: nothing lost to the faults


def test_the_limit_is_minus_one_when_unlimited(start_operator):
    port = free_port()
    start_operator("--metrics-port", str(port))
    assert value(serving(port), "stepflow_running_steps_limit") == -1


def test_a_slot_wait_in_the_first_group_is_measured(kube, start_operator):
    port = free_port()
    start_operator("--metrics-port", str(port), "--max-running-jobs", "1", f"--namespace={kube.namespace}")
    serving(port)
    kube.create(workflow("crowded", [typed("a", "x", "600ms", parallel=True),
                                     typed("b", "x", parallel=True)]))
    kube.wait_phase("crowded")
    samples = scrape(port)
    assert (value(samples, "stepflow_step_wait_seconds_count") or 0) >= 1  # b waited for a's slot
