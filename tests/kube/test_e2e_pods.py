"""What a step's pod meets on a real cluster: it cannot be created, cannot be scheduled, is
stopped by its deadline, or must pass the `restricted` Pod Security Standard."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import yaml

from kube.realcluster import Kube, step, wait_for, workflow
from operator_harness import ROOT
from stepflow.status import parse_time

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def step_entry(kube: Kube, name: str, step_name: str) -> dict:
    return (kube.status(name).get("steps") or {}).get(step_name) or {}


def test_a_missing_service_account_shows_pod_create_failed_until_it_exists(kube, operator):
    kube.create(workflow("deploy", [step("ship")], serviceAccountName="ci-bot"))
    entry = wait_for(
        lambda: (e := step_entry(kube, "deploy", "ship")).get("reason") == "PodCreateFailed" and e,
        timeout=30, message="the step never showed PodCreateFailed")
    assert entry["phase"] == "Running"  # its Job exists and the Job controller keeps retrying
    assert 'serviceaccount "ci-bot" not found' in entry["message"]  # the API's own words
    # Events are posted from a background queue, after the status write that they follow.
    warnings = wait_for(lambda: [e for e in kube.events("deploy") if e["reason"] == "PodCreateFailed"],
                        timeout=15, message="no PodCreateFailed Event")
    assert len(warnings) == 1 and "ci-bot" in warnings[0]["message"]

    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ci-bot"}})
    status = kube.wait_phase("deploy", timeout=90)  # the Job controller's create back-off
    assert status["phase"] == "Succeeded"
    assert not status["steps"]["ship"].get("reason")


@pytest.mark.parametrize("kube", [RESTRICTED], indirect=True)
def test_under_restricted_a_pod_without_a_security_context_fails_within_its_timeout(kube, operator):
    kube.create(workflow("plain", [step("build", timeoutSeconds=12), step("never")]))
    entry = wait_for(
        lambda: (e := step_entry(kube, "plain", "build")).get("reason") == "PodCreateFailed" and e,
        timeout=30, message="the step never showed PodCreateFailed")
    assert "violates PodSecurity" in entry["message"] and "restricted" in entry["message"]
    status = kube.wait_phase("plain", timeout=60)
    assert status["steps"]["build"]["phase"] == "Failed"
    assert status["steps"]["build"]["reason"] == "DeadlineExceeded"  # timeoutSeconds bounds the wait
    assert status["steps"]["never"]["phase"] == "Skipped"


@pytest.mark.parametrize("kube", [RESTRICTED], indirect=True)
def test_the_restricted_example_runs_in_a_restricted_namespace(kube, operator):
    kube.kubectl("apply", "-f", str(ROOT / "examples" / "restricted.yaml"))
    status = kube.wait_phase("restricted-build")
    assert status["phase"] == "Succeeded", status.get("message")
    [pod] = kube.pods("restricted-build-1-lint")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


@contextlib.contextmanager
def node_label(kube: Kube, node: str, key: str, value: str) -> Iterator[None]:
    kube.patch("nodes", node, {"metadata": {"labels": {key: value}}})
    try:
        yield
    finally:
        kube.patch("nodes", node, {"metadata": {"labels": {key: None}}})


def test_an_unschedulable_step_shows_the_schedulers_reason_until_a_node_fits(kube, operator):
    key = f"stepflow.test/{kube.namespace[-6:]}"  # a label no other test uses
    kube.create(workflow("gpu", [step("train", nodeSelector={key: "yes"},
                                      tolerations=[{"key": "gpu", "operator": "Exists"}])]))
    entry = wait_for(
        lambda: (e := step_entry(kube, "gpu", "train")).get("reason") == "Unschedulable" and e,
        timeout=30, message="the step never showed Unschedulable")
    assert entry["phase"] == "Running"
    assert "0/2 nodes are available" in entry["message"]
    wait_for(lambda: any(e["reason"] == "Unschedulable" for e in kube.events("gpu")), timeout=15,
             message="no Unschedulable Event")
    [pod] = kube.pods("gpu-1-train")
    assert {"key": "gpu", "operator": "Exists"} in pod["spec"]["tolerations"]

    with node_label(kube, "kwok-node-1", key, "yes"):
        status = kube.wait_phase("gpu", timeout=60)
    assert status["phase"] == "Succeeded"
    assert not status["steps"]["train"].get("reason")
    assert kube.pods("gpu-1-train")[0]["spec"]["nodeName"] == "kwok-node-1"


def test_a_timed_out_step_ends_once_its_pod_has_stopped_with_its_exit_code(kube, operator):
    """The Job controller sets FailureTarget, stops the pod (here in 3 s), and only then Failed:
    the next step must not start while the timed-out one still runs."""
    stuck = step("migrate", hold=True, grace="3s", timeoutSeconds=2, continueOnError=True)
    kube.create(workflow("slow", [stuck, step("verify")]))
    status = kube.wait_phase("slow", timeout=60)
    migrate = status["steps"]["migrate"]
    assert migrate["phase"] == "Failed" and migrate["reason"] == "DeadlineExceeded"
    assert migrate["exitCode"] == 143  # SIGTERM, read from the pod before it was removed
    job = kube.get("jobs", "slow-1-migrate")
    [target] = [c for c in job["status"]["conditions"] if c["type"] == "FailureTarget"]
    stopping_since = parse_time(target["lastTransitionTime"])  # whole seconds, rounded down
    assert parse_time(status["steps"]["verify"]["startedAt"]) - stopping_since >= 2.0
    assert status["phase"] == "Succeeded"  # continueOnError


def test_examples_declare_nothing_the_api_server_prunes(kube):
    """Every field of the security contexts in the restricted example survives the round trip."""
    doc = yaml.safe_load((ROOT / "examples" / "restricted.yaml").read_text())
    kube.kubectl("apply", "-f", str(ROOT / "examples" / "restricted.yaml"))
    stored = kube.get("workflows", "restricted-build")
    assert stored["spec"]["defaults"] == doc["spec"]["defaults"]
