"""Liveness endpoint and namespace-scoped watching, as the Deployment runs them."""

from __future__ import annotations

import time
import urllib.request

import pytest

from operator_harness import free_port, status_of, wait_phase, workflow

pytestmark = pytest.mark.cluster(time_scale=0.3)


def step(name):
    return {"name": name, "script": "sleep 0.1"}


def test_liveness_endpoint_answers_while_the_operator_runs(cluster, start_operator):
    port = free_port()
    start_operator(f"--liveness=http://127.0.0.1:{port}/healthz")

    def healthy():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    cluster.wait_for(healthy, timeout=20)


def test_a_namespaced_operator_handles_only_its_namespace(cluster, start_operator):
    for namespace in ("team-a", "team-b"):
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                       exist_ok=True)
    start_operator("--namespace=team-a")
    cluster.create(workflow("mine", [step("a")], namespace="team-a"))
    cluster.create(workflow("theirs", [step("a")], namespace="team-b"))
    assert wait_phase(cluster, "mine", namespace="team-a")["phase"] == "Succeeded"
    time.sleep(0.5)
    assert status_of(cluster, "theirs", namespace="team-b") == {}
    assert [j["metadata"]["namespace"] for j in cluster.objects("jobs")] == ["team-a"]
