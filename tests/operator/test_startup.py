"""The composition root: flags read from the environment, the wait for the Workflow CRD, the
Events about Workflows, and what a new leader takes over (mirror: operator/startup.py)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from stepflow.operator import startup
from stepflow.operator.runtime.api import NotFound
from stepflow.operator.runtime.events import build_event, gathered_message
from stepflow.operator.startup import (
    WORKFLOW_EVENTS,
    Operator,
    lease_settings,
    max_running_jobs,
    wait_for_crd,
)
from stepflow.operator.store import Store

WORKFLOW = {"metadata": {"name": "wf", "namespace": "team-a", "uid": "u1"}}
LEASE_ENV = ("STEPFLOW_LEADER_ELECT", "STEPFLOW_LEASE_NAMESPACE", "POD_NAMESPACE", "STEPFLOW_LEASE_NAME",
             "STEPFLOW_LEASE_DURATION", "STEPFLOW_RENEW_DEADLINE", "STEPFLOW_RETRY_PERIOD")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*LEASE_ENV, "STEPFLOW_MAX_RUNNING_JOBS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_leader_election_is_off_unless_asked_for_and_takes_main_pys_settings(env):
    assert lease_settings() is None
    env.setenv("STEPFLOW_LEADER_ELECT", "1")
    env.setenv("POD_NAMESPACE", "stepflow-system")
    settings = lease_settings()
    assert settings is not None
    assert (settings.namespace, settings.name) == ("stepflow-system", "stepflow-operator")
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (15, 10, 2)
    assert settings.identity != lease_settings().identity  # two processes never share one
    env.setenv("STEPFLOW_LEASE_NAMESPACE", "elsewhere")
    env.setenv("STEPFLOW_LEASE_NAME", "mine")
    env.setenv("STEPFLOW_LEASE_DURATION", "30")
    settings = lease_settings()
    assert (settings.namespace, settings.name, settings.lease_duration) == ("elsewhere", "mine", 30)


def test_the_operator_wide_cap_is_unlimited_by_default(env):
    assert max_running_jobs() is None
    env.setenv("STEPFLOW_MAX_RUNNING_JOBS", " 7 ")
    assert max_running_jobs() == 7


def test_events_are_about_the_workflow_and_gathered_ones_name_its_steps():
    event = build_event(WORKFLOW_EVENTS, WORKFLOW, "Warning", "StepFailed", 'step "a" failed', 0.0)
    assert event["involvedObject"] == {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow",
                                       "name": "wf", "namespace": "team-a", "uid": "u1"}
    assert event["source"] == {"component": "stepflow-operator"}
    assert event["reportingComponent"] == "stepflow.dev/operator"
    assert event["firstTimestamp"] == "1970-01-01T00:00:00.000Z"
    assert gathered_message(WORKFLOW_EVENTS, ['"a"', '"b"'], "succeeded") == 'steps "a" and "b" succeeded'


def test_a_new_leader_counts_what_runs_before_it_reconciles_every_cached_workflow():
    store, calls = Store(), []
    for name in ("a", "b"):
        store.put_workflow({"metadata": {"namespace": "ns", "name": name, "resourceVersion": "1"}})
    reconciler = SimpleNamespace(prime_slots=lambda: calls.append("primed"))
    operator = Operator(controller=None, store=store, reconciler=reconciler)  # type: ignore[arg-type]
    assert sorted(operator.take_over()) == [("ns", "a"), ("ns", "b")]
    assert calls == ["primed"]


class Discovery:
    """The API's discovery of stepflow.dev/v1alpha1: missing, then failing, then served."""

    def __init__(self, *answers: Any):
        self.answers = list(answers)
        self.paths: list[str] = []

    def request(self, method: str, path: str) -> dict[str, Any]:
        self.paths.append(path)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_operator_waits_for_the_workflow_crd_and_says_so_once(caplog):
    served = {"resources": [{"name": "steppools"}, {"name": "workflows"}]}
    api = Discovery(NotFound("no such group"), OSError("connection refused"), {"resources": []}, served)
    with caplog.at_level(logging.INFO, logger="stepflow.operator.startup"):
        asyncio.run(wait_for_crd(api, limit=30, interval=0.01))  # type: ignore[arg-type]
    assert api.paths == ["/apis/stepflow.dev/v1alpha1"] * 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("waiting for the Workflow CRD" in m for m in messages) == 1
    assert any("connection refused" in m for m in messages)
    assert messages[-1] == "the Workflow CRD is served now; starting"


def test_without_the_crd_the_operator_exits_after_the_limit(monkeypatch):
    exits: list[str] = []

    def exit_now(message: str, *args: Any) -> None:
        exits.append(message % args)
        raise SystemExit(1)

    monkeypatch.setattr(startup, "exit_now", exit_now)
    with pytest.raises(SystemExit):
        asyncio.run(wait_for_crd(Discovery(NotFound("no such group")), limit=0.05, interval=0.01))  # type: ignore[arg-type]
    assert len(exits) == 1
    assert "was not served within 0s" in exits[0] and "kubectl apply -k deploy/" in exits[0]
