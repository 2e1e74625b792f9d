"""The Helm chart on the real control plane: `helm install`, then a workflow completes with the
chart's ServiceAccount; `helm upgrade` with a changed value rolls the operator and leader election
hands a running workflow over; `helm uninstall` leaves the CRDs.

What this tier can and cannot show. The API server, etcd, RBAC authorizer, admission (with
OwnerReferencesPermissionEnforcement) and the Deployment and ReplicaSet controllers are real, so
Helm's objects are really created, judged and rolled. The pods are played by kwok: the
Deployment's pods become Ready, but no container runs. So the operator runs here as local
processes, one per replica, started as the pod would start them: the args and env of the chart's
rendered Deployment ($(VAR) and the fieldRef expanded as the kubelet does), logged in with a token
of the chart's ServiceAccount from the TokenRequest API, as a projected token would be. Only the
ports differ (two "pods" share one host), and the image is not the one run (the image tests are).
The CRDs already exist in this session (deploy/ installs them; the chart's copies are the same
generated files, tests/test_crd.py), so Helm's own creation of them is not shown here.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.controlplane import ControlPlane
from kube.realcluster import Kube, step, wait_for, workflow
from manifests.helm import CHART, helm
from operator_harness import OperatorProcess, free_port, operators

NAME = "stepflow-helm"  # not deploy/'s stepflow-operator: its ClusterRole is installed already
CRDS = ("workflows.stepflow.dev", "steppools.stepflow.dev", "steptypes.stepflow.dev",
        "clustersteptypes.stepflow.dev")


class Release:
    """One Helm release of the chart in the test's namespace, driven by the real ``helm``."""

    def __init__(self, plane: ControlPlane, kube: Kube, folder: Path):
        self.plane, self.kube, self.folder = plane, kube, folder
        self.kubeconfig = str(plane.kubeconfig)

    def helm(self, *args: str) -> str:
        return helm(*args, "--namespace", self.kube.namespace, "--kubeconfig", self.kubeconfig).stdout

    def install(self, *sets: str) -> str:
        return self.helm("install", "stepflow", str(CHART), "--set", f"fullnameOverride={NAME}",
                         *[f"--set={s}" for s in sets], "--wait", "--timeout=120s")

    def upgrade(self, *sets: str) -> str:
        return self.helm("upgrade", "stepflow", str(CHART), "--reuse-values",
                         *[f"--set={s}" for s in sets], "--wait", "--timeout=120s")

    def deployment(self) -> dict[str, Any]:
        """The Deployment as Helm last applied it (`helm get manifest`)."""
        manifest = self.helm("get", "manifest", "stepflow")
        return next(d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment")

    def token_kubeconfig(self) -> Path:
        """Logged in as the chart's ServiceAccount, with a token from the TokenRequest API."""
        return self.plane.token_kubeconfig(NAME, self.kube.namespace, self.folder / f"{NAME}.kubeconfig")


def as_the_pod_runs(deployment: dict[str, Any], namespace: str) -> tuple[list[str], dict[str, str], int]:
    """The args and env the kubelet would give the operator's container, with the health and
    metrics ports moved to free ones; and the health port."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            assert variable["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, variable
            env[variable["name"]] = namespace
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["args"]]
    health = free_port()
    args = [re.sub(r":8080/", f":{health}/", arg) if arg.startswith("--liveness=") else arg for arg in args]
    env["STEPFLOW_METRICS_PORT"] = str(free_port())
    return args, env, health


def healthy(port: int) -> bool:
    """What the chart's readiness probe asks: GET /healthz answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def metric(process: OperatorProcess, name: str) -> float | None:
    """One unlabelled series from the process's /metrics; None while it does not answer."""
    url = f"http://127.0.0.1:{process.env['STEPFLOW_METRICS_PORT']}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            found = re.search(rf"^{name} (\S+)$", response.read().decode(), re.M)
    except OSError:
        return None
    return float(found.group(1)) if found else None


def lease_holder(kube: Kube) -> str:
    return ((kube.get("leases", NAME) or {}).get("spec") or {}).get("holderIdentity") or ""


def identity(process: OperatorProcess) -> str:
    found = wait_for(lambda: re.search(r"leader election on lease \S+ as (\S+)", process.log()),
                     message="the operator never said its identity")
    return found.group(1)


@pytest.fixture
def release(control_plane: ControlPlane, kube: Kube, tmp_path: Path) -> Iterator[Release]:
    release = Release(control_plane, kube, tmp_path)
    yield release
    helm("uninstall", "stepflow", "--namespace", kube.namespace, "--kubeconfig", release.kubeconfig,
         "--ignore-not-found", "--wait", "--timeout=60s")


@pytest.fixture
def replica(release: Release, tmp_path: Path) -> Iterator[Callable[[], OperatorProcess]]:
    """Start one operator process as a pod of the release's current Deployment would run;
    a traceback or an RBAC refusal in its log fails the test."""
    kubeconfig = tmp_path / f"{NAME}.kubeconfig"  # written once the release made its ServiceAccount
    with operators(kubeconfig, tmp_path, refused=("forbidden",)) as start:
        def one() -> OperatorProcess:
            if not kubeconfig.exists():
                release.token_kubeconfig()
            args, env, health = as_the_pod_runs(release.deployment(), release.kube.namespace)
            process = start(*args, env=env)
            process.health_port = health  # type: ignore[attr-defined]
            return process
        yield one


def test_helm_install_then_a_workflow_completes_with_the_charts_service_account(release, replica, kube,
                                                                                 control_plane):
    out = release.install()
    assert "STATUS: deployed" in out
    assert "`helm uninstall` leaves them" in out  # NOTES: the CRDs stay
    deployment = kube.plane.kubectl("get", "deployment", NAME, "-n", kube.namespace, "-o", "json")
    status = json.loads(deployment)["status"]
    assert status["readyReplicas"] == 2  # kwok's pods, but the Deployment controller's real rollout

    operator = replica()
    wait_for(lambda: healthy(operator.health_port), timeout=60, message="the operator never became ready")
    kube.create(workflow("after-install", [step("a"), step("b", dependsOn=["a"])]))
    assert kube.wait_phase("after-install")["phase"] == "Succeeded"
    # Everything was asked as the chart's ServiceAccount, and its RBAC allowed it (no "forbidden").
    asked = kube.requests_by(f"system:serviceaccount:{kube.namespace}:{NAME}")
    assert asked["create jobs"] == 2 and asked["patch workflows/status"] >= 2, asked

    operator.stop()  # as deleting the Deployment stops its pods: the account's token dies with it
    out = release.helm("uninstall", "stepflow", "--wait", "--timeout=60s")
    assert "uninstalled" in out
    assert not kube.plane.kubectl("get", "clusterrole", NAME, "--ignore-not-found", "-o", "name").strip()
    assert not kube.plane.kubectl("get", "deployment", NAME, "-n", kube.namespace, "--ignore-not-found",
                                  "-o", "name").strip()
    # The CRDs, and so every Workflow, are left in place.
    found = kube.plane.kubectl("get", "crd", *CRDS, "-o", "name").split()
    assert sorted(found) == sorted(f"customresourcedefinition.apiextensions.k8s.io/{c}" for c in CRDS)
    assert kube.status("after-install")["phase"] == "Succeeded"


def test_helm_upgrade_rolls_the_operator_and_the_new_leader_finishes_a_running_workflow(
        release, replica, kube):
    release.install()
    first, second = replica(), replica()
    holder = wait_for(lambda: lease_holder(kube), timeout=30, message="nobody took the lease")
    by_identity = {identity(first): first, identity(second): second}
    leader = by_identity[holder]
    standby = second if leader is first else first
    wait_for(lambda: metric(leader, "stepflow_running_steps_limit") == -1, timeout=30,
             message="the first release should run uncapped")

    kube.create(workflow("across-upgrade", [step("slow", duration=None, hold=True),
                                            step("after", dependsOn=["slow"])]))
    wait_for(lambda: kube.step_phase("across-upgrade", "slow") == "Running", timeout=60,
             message="the held step never ran")
    (job,) = kube.jobs("across-upgrade")

    template_before = release.deployment()["spec"]["template"]
    release.upgrade("maxRunningJobs=5")
    template_after = release.deployment()["spec"]["template"]
    assert "--max-running-jobs=5" in template_after["spec"]["containers"][0]["args"]
    assert template_after != template_before
    # The Deployment controller rolled it: a second ReplicaSet, the new one holding every replica.
    sets = json.loads(kube.plane.kubectl("get", "replicasets", "-n", kube.namespace, "-o", "json"))["items"]
    sets = [s for s in sets if s["metadata"]["name"].startswith(NAME + "-")]
    assert len(sets) == 2 and sorted(s["spec"]["replicas"] for s in sets) == [0, 2]

    # The roll as maxSurge 0, maxUnavailable 1 does it: the standby's pod goes first, a new one
    # comes; then the leader's pod is stopped gracefully (SIGTERM) and a second new one comes.
    standby.stop()
    newer = replica()
    old_leader = identity(leader)
    leader.stop()
    assert "released the lease" in leader.log()  # a graceful hand-over, not a lease expiry
    newest = replica()
    holder = wait_for(lambda: lease_holder(kube) not in ("", old_leader) and lease_holder(kube),
                      timeout=30, message="no new replica took the lease")
    assert holder in (identity(newer), identity(newest))
    successor = newer if holder == identity(newer) else newest
    wait_for(lambda: metric(successor, "stepflow_running_steps_limit") == 5, timeout=30,
             message="the new leader does not apply the upgraded cap")

    kube.release(job["metadata"]["name"])
    final = kube.wait_phase("across-upgrade", timeout=60)
    assert final["phase"] == "Succeeded"
    # The running step was adopted, not started again: its Job is the one from before the upgrade.
    uids = [j["metadata"]["uid"] for j in kube.jobs("across-upgrade")]
    assert len(uids) == 2 and job["metadata"]["uid"] in uids
    assert "became the leader" in successor.log()
