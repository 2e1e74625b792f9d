"""The namespaced install (deploy/namespaced/) and the liveness endpoint, as the Deployment runs
the operator."""

from __future__ import annotations

import time
import urllib.request

from kube.realcluster import Kube, step, wait_for, workflow
from operator_harness import ROOT, free_port


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


def test_the_liveness_endpoint_answers_while_the_operator_runs(kube, start_operator):
    port = free_port()
    start_operator(f"--liveness=http://127.0.0.1:{port}/healthz")

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(healthy, timeout=30)
