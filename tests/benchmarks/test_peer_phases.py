"""benchmarks/peer_phases.py: where a step of a chain goes, phase by phase, from audit entries
shaped like the API server's (the policy of tests/kube/peers.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peer_phases  # noqa: E402
from peer_session import KWOK_USER, Window  # noqa: E402

START = datetime(2026, 12, 7, 19, 0, 0, tzinfo=UTC)
OPERATOR = "system:serviceaccount:stepflow-system:stepflow-operator"
ARGO = "system:serviceaccount:argo:argo"
NS = "peers-1-1"


def at(ms: float) -> str:
    return (START + timedelta(milliseconds=ms)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event(user: str, verb: str, resource: str, received: float, stored: float | None = None, name: str = "",
          sub: str = "", code: int = 201, body: dict | None = None) -> dict:
    ref = {"resource": resource, "namespace": NS, **({"name": name} if name else {}),
           **({"subresource": sub} if sub else {})}
    return {"stage": "ResponseComplete", "verb": verb, "user": {"username": user}, "objectRef": ref,
            "responseStatus": {"code": code}, "requestReceivedTimestamp": at(received),
            "stageTimestamp": at(received + 1 if stored is None else stored),
            **({"requestObject": body} if body else {})}


def pod_life(pod: str, created: float, bound: float, running: float, ended: float, **create: object) -> list:
    """The create (keyword arguments: how it names the pod), the binding, kwok's two status writes."""
    return [event(create.pop("user", KWOK_USER), "create", "pods", created, **create),
            event(KWOK_USER, "create", "pods", bound, name=pod, sub="binding"),
            event(KWOK_USER, "patch", "pods", running - 2, running, name=pod, sub="status", code=200),
            event(KWOK_USER, "patch", "pods", ended - 2, ended, name=pod, sub="status", code=200)]


def stepflow_step(job: str, base: float, suffix: str = "abcde") -> list:
    """A Job created at ``base``; the Job controller creates its pod 10 ms later from
    generateName, the scheduler binds it 20 ms after that, kwok runs it 5 ms later and ends it
    15 ms after."""
    generated = {"metadata": {"generateName": f"{job}-", "ownerReferences": [{"kind": "Job", "name": job}]}}
    return [event(OPERATOR, "create", "jobs", base, name=job),
            *pod_life(f"{job}-{suffix}", base + 10, base + 30, base + 35, base + 50, body=generated)]


def test_a_stepflow_chain_is_cut_at_the_job_the_pod_its_binding_and_kwoks_writes():
    events = [*stepflow_step("chain-1-s000", 0), *stepflow_step("chain-1-s001", 57),
              *stepflow_step("chain-1-s002", 50 + 57 + 3)]
    events.append(event(OPERATOR, "create", "jobs", 60, name="chain-1-s001", code=409))  # failed: not a step
    events.append(event(KWOK_USER, "create", "pods", 5, name="other-pod"))  # no child of this chain
    window = Window(reversed(events), OPERATOR, "jobs", {NS})
    found = peer_phases.phases(window)
    assert (found["steps"], found["unmatched"]) == (2, 0)
    # step 1: the previous pod ended at 50, its Job at 57 (7 ms); step 2: at 107 and 110 (3 ms)
    assert found["p50_ms"] == pytest.approx({"child": 3, "pod": 10, "bound": 20, "running": 5, "ended": 15,
                                             "step": 53}, abs=0.01)
    assert found["mean_ms"]["child"] == pytest.approx(5, abs=0.01)
    assert found["mean_ms"]["step"] == pytest.approx(
        sum(found["mean_ms"][p] for p, _ in peer_phases.PHASES), abs=0.01)
    assert window.reactions_ms() == pytest.approx([7, 3], abs=0.01)  # the reaction reads the same Window


def test_argo_has_no_child_phase_and_a_child_with_two_pods_is_left_out():
    events = []
    for i, base in enumerate((0, 100, 200)):
        pod = f"chain-step-{i}"
        events += pod_life(pod, base, base + 4, base + 10, base + 30, user=ARGO, name=pod)
    window = Window(events, ARGO, "pods", {NS})
    found = peer_phases.phases(window)
    assert found["steps"] == 2
    assert found["p50_ms"]["child"] is None and found["mean_ms"]["child"] is None
    assert found["p50_ms"]["pod"] == pytest.approx(70, abs=0.01)  # the previous pod ended -> this pod
    assert found["p50_ms"]["step"] == pytest.approx(100, abs=0.01)

    retried = [*stepflow_step("wf-1-a", 0), *stepflow_step("wf-1-b", 60),
               *pod_life("wf-1-b-zzzzz", 200, 210, 220, 230,
                         body={"metadata": {"generateName": "wf-1-b-"}})]
    found = peer_phases.phases(Window(retried, OPERATOR, "jobs", {NS}))
    assert (found["steps"], found["unmatched"]) == (0, 1)


def test_a_pod_belongs_to_the_longest_child_name_it_extends():
    children = ["run-a", "run-a-b", "chain-step-1"]
    assert peer_phases.owner("run-a-b-pod", children) == "run-a-b"  # Tekton: <taskrun>-pod
    assert peer_phases.owner("run-a-x1y2z", children) == "run-a"  # the Job controller's pod
    assert peer_phases.owner("run-a-", children) == "run-a"  # its create's generateName
    assert peer_phases.owner("chain-step-1", children) == "chain-step-1"  # Argo: the pod is the child
    assert peer_phases.owner("run-ab-pod", children) is None
