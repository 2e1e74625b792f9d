"""The namespaced install (deploy/namespaced/) and the liveness endpoint, as the Deployment runs
the operator."""

from __future__ import annotations

import time
import urllib.request

from kube.build import ensure_assets
from kube.controlplane import ControlPlane
from kube.realcluster import Kube, step, wait_for, workflow
from operator_harness import ROOT, free_port, operators


def test_the_namespaced_install_serves_only_its_namespace_with_a_role(
    control_plane, kube, start_operator, tmp_path
):
    """deploy/namespaced/ grants a Role in one namespace: the operator works there, under RBAC
    that would refuse it anywhere else, and leaves other namespaces alone."""
    rendered = control_plane.kubectl("kustomize", str(ROOT / "deploy" / "namespaced"))
    home = kube.namespace
    control_plane.kubectl(
        "apply",
        f"--namespace={home}",
        "-f",
        "-",
        input=rendered.replace("namespace: stepflow\n", f"namespace: {home}\n"),
    )
    assert kube.get("serviceaccounts", "stepflow-operator") is not None
    credentials = control_plane.token_kubeconfig(
        "stepflow-operator", home, tmp_path / "namespaced.kubeconfig"
    )
    start_operator(f"--namespace={home}", kubeconfig=credentials)

    elsewhere = Kube(control_plane, f"{home[:50]}-other")
    elsewhere.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": elsewhere.namespace}})
    wait_for(lambda: elsewhere.get("serviceaccounts", "default"))
    try:
        kube.create(workflow("mine", [step("a")]))
        elsewhere.create(workflow("theirs", [step("a")]))
        assert kube.wait_phase("mine")["phase"] == "Succeeded"
        time.sleep(1)
        assert elsewhere.status("theirs") == {} and elsewhere.jobs() == []
    finally:
        elsewhere.delete("namespaces", elsewhere.namespace)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_liveness_endpoint_answers_while_the_operator_runs(kube, start_operator):
    port = free_port()
    start_operator(f"--liveness=http://127.0.0.1:{port}/healthz")
    wait_for(lambda: healthy(port), timeout=30)


def test_an_operator_started_before_its_crd_waits_unready_then_serves(tmp_path):
    """`kubectl apply -k deploy/` creates the CRD and the Deployment at once, so the operator can
    come first. On a control plane of its own, without the CRD: an operator that cannot wait
    longer exits with the reason, for Kubernetes to restart it; one that waits is neither live
    nor ready until the CRD is applied, and then serves Workflows."""
    plane = ControlPlane(ensure_assets(), tmp_path / "plane").start()
    try:
        with operators(plane.kubeconfig, tmp_path) as start:
            impatient = start(env={"STEPFLOW_CRD_WAIT": "2"})
            assert impatient.process.wait(60) == 1
            assert "the Workflow CRD (workflows.stepflow.dev) was not served within 2s" in impatient.log()

            port = free_port()
            patient = start(f"--liveness=http://127.0.0.1:{port}/healthz")
            wait_for(lambda: "waiting for the Workflow CRD" in patient.log(), timeout=30)
            time.sleep(1)
            assert not healthy(port) and patient.process.poll() is None

            plane.kubectl("apply", "-k", str(ROOT / "deploy"))
            kube = Kube(plane, "default")
            wait_for(lambda: healthy(port), timeout=30)
            kube.create(workflow("late", [step("a")]))
            assert kube.wait_phase("late", timeout=60)["phase"] == "Succeeded"
    finally:
        plane.stop()
