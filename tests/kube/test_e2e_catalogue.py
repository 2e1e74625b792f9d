"""deploy/catalogue/ and examples/platform-types.yaml on the real control plane (T6): the
catalogue, included as a kustomize component the way a platform team includes it, is accepted by
the API server; each of its types makes Jobs that carry what the type and the step say, and pass
the `restricted` Pod Security Standard; the seed-shaped example runs as written."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kube.realcluster import Kube, outcome, wait_for, workflow
from operator_harness import ROOT
from stepflow.env_values import expand_references
from stepflow.workflow_files import load_plan

CATALOGUE = ROOT / "deploy" / "catalogue"
TYPES = {d["metadata"]["name"]: d for f in sorted(CATALOGUE.glob("*.yaml")) if f.name != "kustomization.yaml"
         for d in yaml.safe_load_all(f.read_text()) if d}
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
HOSTILE = "http://backend.shop.svc/healthz?token=$(HOME)&pid=$$;reboot"


def platform_kustomization(where: Path, **fields: object) -> Path:
    """A platform team's kustomization that includes the catalogue as a component."""
    where.mkdir()
    (where / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields,
        "components": [os.path.relpath(CATALOGUE, where)]}))
    return where


@pytest.fixture
def catalogue(kube: Kube, tmp_path: Path) -> Iterator[str]:
    """The catalogue applied with `kubectl apply -k`; ClusterStepTypes outlive the test's
    namespace, so they are deleted afterwards. Yields kubectl's output."""
    try:
        yield kube.kubectl("apply", "-k", str(platform_kustomization(tmp_path / "platform")))
    finally:
        for name in TYPES:
            with contextlib.suppress(Exception):
                kube.delete("clustersteptypes", name)


def test_the_catalogue_is_a_component_that_installs_three_cluster_step_types(kube, catalogue, tmp_path):
    assert sorted(TYPES) == ["http-check", "kubectl-apply", "terraform"]
    for name in TYPES:
        assert re.search(rf"^clustersteptype\.stepflow\.dev/{name} (created|configured|unchanged)$",
                         catalogue, re.M), catalogue
        stored = kube.get("clustersteptypes", name)
        assert "namespace" not in stored["metadata"]
        for key, value in TYPES[name]["spec"].items():  # nothing pruned, nothing rewritten
            assert stored["spec"][key] == value, (name, key)
    listed = kube.kubectl("get", "cstype", *TYPES)
    for name, doc in TYPES.items():
        row = next(line for line in listed.splitlines() if line.startswith(name + " "))
        assert doc["spec"]["image"] in row
    # The install does not include it; a kustomization that sets a namespace may still include it
    # (the API server ignores a namespace on a cluster-scoped object).
    assert "catalogue" not in (ROOT / "deploy" / "kustomization.yaml").read_text()
    namespaced = platform_kustomization(tmp_path / "team", namespace=kube.namespace)
    out = kube.kubectl("apply", "--dry-run=server", "-k", str(namespaced))
    assert out.count("clustersteptype.stepflow.dev/") == 3, out


def env_of(container: dict) -> list[tuple[str, object]]:
    """(name, value or valueFrom); the API server drops an empty value, which still sets "". """
    return [(e["name"], e["valueFrom"] if "valueFrom" in e else e.get("value", "")) for e in container["env"]]


@pytest.mark.parametrize("kube", [RESTRICTED], indirect=True)
def test_each_catalogue_type_makes_jobs_with_its_image_script_params_and_the_steps_account(
        kube, operator, catalogue):
    for account in ("deployer", "runner"):
        kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}})
    kube.kubectl("create", "secret", "generic", "cloud", "--from-literal=key-id=AKIA-TEST")
    credentials = {"name": "AWS_ACCESS_KEY_ID",
                   "valueFrom": {"secretKeyRef": {"name": "cloud", "key": "key-id"}}}
    steps = [
        {"name": "apply", "type": "kubectl-apply", "serviceAccountName": "deployer",
         "with": {"MANIFESTS": "https://github.com/example/shop//deploy/prod?ref=v1.4.2",
                  "KUSTOMIZE": "true"}},
        {"name": "infra", "type": "terraform", "env": [credentials],
         "with": {"REPO": "https://github.com/example/infra.git", "REF": "v2.0.0", "COMMAND": "apply"}},
        {"name": "check", "type": "http-check", "with": {"URL": HOSTILE, "TIMEOUT": "60"}},
    ]
    for entry in steps:
        entry["podMetadata"] = outcome(duration="200ms")
    # spec.defaults.image (alpine:3.20) is there too: a type's image wins over it (T2).
    kube.create(workflow("catalogue", steps, serviceAccountName="runner"))
    status = kube.wait_phase("catalogue")
    assert status["phase"] == "Succeeded", status.get("message")  # admitted under `restricted`
    assert sorted(status["stepTypes"]) == sorted(TYPES)
    assert {e["kind"] for e in status["stepTypes"].values()} == {"ClusterStepType"}

    given = {
        "apply": {"MANIFESTS": steps[0]["with"]["MANIFESTS"], "KUSTOMIZE": "true", "NAMESPACE": "",
                  "DRY_RUN": "none"},
        "infra": {"REPO": "https://github.com/example/infra.git", "REF": "v2.0.0", "DIR": ".",
                  "COMMAND": "apply", "VAR_FILE": ""},
        "check": {"URL": HOSTILE, "EXPECTED": "200", "TIMEOUT": "60", "INTERVAL": "5"},
    }
    accounts = {"apply": "deployer", "infra": "runner", "check": "runner"}
    for entry in steps:
        step, spec = entry["name"], TYPES[entry["type"]]["spec"]
        job = kube.get("jobs", f"catalogue-1-{step}")
        pod = job["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["image"] == spec["image"], step
        assert container["command"] == ["sh", "-c", spec["script"]], step
        assert container["securityContext"] == spec["securityContext"], step
        assert container["resources"] == spec["resources"], step
        assert job["spec"]["activeDeadlineSeconds"] == spec["timeoutSeconds"], step
        # The type sets no account: the step's own, else the Workflow's.
        assert "serviceAccountName" not in spec
        assert pod["serviceAccountName"] == accounts[step], step
        # Params first, in the type's order, with the defaults filled in; then the type's env,
        # then the step's own (a Secret's key, as the docs tell users to pass credentials).
        env = env_of(container)
        params = env[:len(spec["params"])]
        assert [name for name, _ in params] == [p["name"] for p in spec["params"]], step
        values = {name: expand_references(value, {}) for name, value in params}
        assert values == given[step], step  # as the kubelet expands them: literally what was given
        rest = [name for name, _ in env[len(params):]]
        own = [e["name"] for e in spec.get("env", ())] + [e["name"] for e in entry.get("env", ())]
        assert [name for name in rest if name in own] == own, step
    infra = dict(env_of(kube.get("jobs", "catalogue-1-infra")["spec"]["template"]["spec"]["containers"][0]))
    assert infra["AWS_ACCESS_KEY_ID"] == credentials["valueFrom"]


def test_the_seed_shaped_example_runs_as_written_and_its_types_shadow_the_catalogues(
        kube, operator, catalogue):
    example = ROOT / "examples" / "platform-types.yaml"
    plan = load_plan(example)
    out = kube.kubectl("apply", "-f", str(example))
    assert "steptype.stepflow.dev/terraform created" in out
    assert "workflow.stepflow.dev/platform-deploy created" in out
    status = kube.wait_phase("platform-deploy")
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["groups"] == [list(g) for g in plan.groups]
    assert status["progress"] == "6/6"
    # The namespace's "terraform" StepType wins over the catalogue's ClusterStepType (T2).
    assert status["stepTypes"]["terraform"]["kind"] == "StepType"
    job = kube.get("jobs", "platform-deploy-1-provision-database")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "alpine:3.20" != TYPES["terraform"]["spec"]["image"]
    assert env_of(container)[:2] == [("MODULE", "infra/database"), ("COMMAND", "apply")]
    # The types come first in the file, so the workflow never waited for them.
    assert not [e for e in kube.events("platform-deploy") if e["reason"] == "StepTypeNotFound"]
    assert len(kube.jobs("platform-deploy")) == 6


def docs_grant(namespace: str) -> str:
    """The ClusterRole and ClusterRoleBinding that docs/step-types.md gives a namespaced
    operator, for the operator of ``namespace``."""
    page = (ROOT / "docs" / "step-types.md").read_text()
    section = page.split("## With a namespaced operator", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert "kind: ClusterRoleBinding" in block
    return block.replace("team-a", namespace)


def test_a_namespaced_operator_uses_cluster_step_types_once_granted_as_the_docs_say(
        control_plane, kube, start_operator, catalogue, tmp_path):
    rendered = control_plane.kubectl("kustomize", str(ROOT / "deploy" / "namespaced"))
    home = kube.namespace
    kube.kubectl("apply", "-f", "-", input=rendered.replace("namespace: stepflow\n", f"namespace: {home}\n"))
    credentials = control_plane.token_kubeconfig("stepflow-operator", home, tmp_path / "ns.kubeconfig")
    steps = [{"name": "check", "type": "http-check", "with": {"URL": "http://backend/healthz"},
              "podMetadata": outcome(duration="200ms")}]

    # deploy/namespaced/ as shipped: a Role, so no ClusterStepTypes; the step's type is missing.
    first = start_operator(f"--namespace={home}", kubeconfig=credentials)
    kube.create(workflow("checked", steps))
    status = wait_for(lambda: (s := kube.status("checked")).get("reason") == "StepTypeNotFound" and s,
                      message="a namespaced operator without the grant did not wait for the type")
    assert '"http-check"' in status["message"] and kube.jobs("checked") == []
    first.stop()

    grant = docs_grant(home)
    try:
        control_plane.kubectl("apply", "-f", "-", input=grant)
        start_operator(f"--namespace={home}", kubeconfig=credentials,
                       env={"STEPFLOW_CLUSTER_STEP_TYPES": "1"})
        status = kube.wait_phase("checked")
        assert status["phase"] == "Succeeded", status.get("message")
        assert status["stepTypes"]["http-check"]["kind"] == "ClusterStepType"
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=grant)
