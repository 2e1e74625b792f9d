"""What only the emulator can stage: a spec change that slips past a CRD without CEL rules.

Runs, suspension, invalid input and deletion are proven on the real control plane
(tests/kube/test_e2e_lifecycle.py).
"""

from __future__ import annotations

import pytest

from cluster.crds import steppool_crd, workflow_crd
from cluster.jobs import Outcome
from operator_harness import status_of, wait_phase, workflow


def step(name, **fields):
    return {"name": name, "script": f"echo {name}; sleep 0.2", **fields}


def crd_without_cel(node=None):
    """The Workflow CRD as a cluster without CEL support would enforce it."""
    node = workflow_crd() if node is None else node
    if isinstance(node, dict):
        return {k: crd_without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [crd_without_cel(v) for v in node]
    return node


@pytest.mark.cluster(time_scale=0.5, crds=[crd_without_cel(), steppool_crd()])
def test_a_spec_change_that_slips_past_the_crd_mid_run_replaces_the_run(cluster, operator):
    cluster.jobs.when(Outcome(duration=30), step="old")
    cluster.create(workflow("swap", [step("old")]))
    cluster.wait_for(lambda: status_of(cluster, "swap").get("steps", {}).get("old", {}).get("phase")
                     == "Running")
    cluster.patch("workflows", "swap", {"spec": {"steps": [step("new")]}})
    status = wait_phase(cluster, "swap")
    assert status["phase"] == "Succeeded" and status["runGeneration"] == 2
    assert list(status["steps"]) == ["new"]
    cluster.wait_for(lambda: cluster.get("jobs", "swap-1-old") is None)  # the old run's Job stopped
    cluster.wait_for(lambda: any(e["reason"] == "RunReplaced" for e in cluster.events()))
