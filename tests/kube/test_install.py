"""deploy/ on a real API server: the CRD's schema and CEL rules, the RBAC, the Deployment under
PodSecurity `restricted`, and what kubectl shows of a Workflow."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from kube.realcluster import step, workflow
from operator_harness import ROOT


def test_the_control_plane_reports_the_pinned_release(control_plane):
    version = json.loads(control_plane.kubectl("version", "-o", "json"))
    pinned = (ROOT / "tests" / "kube" / "versions.env").read_text()
    assert f"KUBERNETES_VERSION={version['serverVersion']['gitVersion']}" in pinned
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]


def test_the_crd_is_established_with_its_printer_columns(control_plane):
    crd = json.loads(control_plane.kubectl("get", "crd", "workflows.stepflow.dev", "-o", "json"))
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:4] == ["Phase", "Progress", "Age", "Duration"]


def test_kubectl_explain_describes_the_steps(kube):
    text = kube.kubectl("explain", "workflow.spec.steps")
    assert "parallelGroup" in text and "dependsOn" in text and "podMetadata" in text


def test_the_crd_cel_rules_refuse_bad_workflows_with_their_messages(kube):
    bad = workflow("bad", [step("a", parallel=False, parallelGroup=1), step("b", dependsOn=["b"])])
    with pytest.raises(subprocess.CalledProcessError) as refused:
        kube.kubectl("apply", "-f", "-", input=json.dumps(bad))
    message = refused.value.stderr
    assert "parallel false conflicts with parallelGroup" in message
    assert "a step cannot depend on itself" in message


def test_resource_claims_are_refused_by_the_crd_rather_than_failing_every_job(kube):
    claimed = workflow("dra", [step("a", resources={"claims": [{"name": "gpu"}]})])
    with pytest.raises(subprocess.CalledProcessError) as refused:
        kube.kubectl("apply", "-f", "-", input=json.dumps(claimed))
    assert "resources.claims is not supported yet" in refused.value.stderr


def test_an_in_run_spec_change_is_refused_by_the_transition_rule(kube):
    kube.kubectl("apply", "-f", "-", input=json.dumps(workflow("locked", [step("a")])))
    kube.patch("workflows", "locked", {"status": {"phase": "Running"}}, subresource="status")
    changed = workflow("locked", [step("a"), step("b")])
    with pytest.raises(subprocess.CalledProcessError) as refused:
        kube.kubectl("apply", "-f", "-", input=json.dumps(changed))
    assert "only spec.suspend and spec.maxConcurrency may change while a run is in progress" in (
        refused.value.stderr
    )
    kube.kubectl("apply", "-f", "-", input=json.dumps(workflow("locked", [step("a")], suspend=True)))


def test_every_example_is_accepted_by_the_api_server(kube):
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        out = kube.kubectl("apply", "--dry-run=server", "-f", str(path))
        assert "created (server dry run)" in out, path.name


def test_the_operator_account_has_exactly_the_rights_it_needs(control_plane, kube):
    account = "system:serviceaccount:stepflow-system:stepflow-operator"

    def can(verb: str, resource: str, namespace: str | None = kube.namespace) -> bool:
        scope = [f"--namespace={namespace}"] if namespace else []
        resource, _, subresource = resource.partition("/")
        if subresource:
            scope.append(f"--subresource={subresource}")
        out = control_plane.kubectl("auth", "can-i", verb, resource, f"--as={account}", *scope, check=False)
        return out.strip() == "yes"

    for verb, resource in (
        ("watch", "workflows.stepflow.dev"),
        ("patch", "workflows.stepflow.dev/status"),
        ("update", "workflows.stepflow.dev/finalizers"),
        ("list", "workflows.stepflow.dev"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("list", "pods"),
        ("watch", "pods"),
        ("create", "events"),
        ("list", "events"),
    ):
        assert can(verb, resource), f"cannot {verb} {resource}"
    for verb, resource in (
        ("create", "pods"),
        ("get", "secrets"),
        ("delete", "workflows.stepflow.dev"),
        ("update", "jobs.batch"),
        ("patch", "workflows.stepflow.dev"),
        ("update", "workflows.stepflow.dev"),
        ("get", "pods"),
        ("create", "workflows.stepflow.dev"),
    ):
        assert not can(verb, resource), f"may {verb} {resource}"
    # Leader election: the one Lease, in the operator's own namespace only.
    def can_lease(verb: str, name: str = "", namespace: str = "stepflow-system") -> bool:
        target = "leases.coordination.k8s.io" + (f"/{name}" if name else "")
        out = control_plane.kubectl("auth", "can-i", verb, target, f"--as={account}",
                                    f"--namespace={namespace}", check=False)
        return out.strip() == "yes"

    assert can_lease("create")
    for verb in ("get", "update", "watch"):
        assert can_lease(verb, "stepflow-operator"), verb
    assert not can_lease("update", "kube-scheduler")
    assert not can_lease("delete", "stepflow-operator")
    assert not can_lease("create", namespace="kube-system")


def test_the_deployment_is_admitted_under_pod_security_restricted(control_plane):
    namespace = json.loads(control_plane.kubectl("get", "namespace", "stepflow-system", "-o", "json"))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    rendered = control_plane.kubectl("kustomize", str(ROOT / "deploy"))
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment")
    out = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(deployment))
    assert "stepflow-operator" in out
    # The ReplicaSet's pods are judged by PodSecurity too: they exist, with no warning event.
    control_plane.kubectl(
        "rollout", "status", "deployment/stepflow-operator", "--namespace=stepflow-system", "--timeout=60s"
    )


def test_a_privileged_pod_is_refused_there_so_the_check_above_means_something(control_plane):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": "stepflow-system"},
        "spec": {
            "containers": [{"name": "c", "image": "alpine:3.20", "securityContext": {"privileged": True}}]
        },
    }
    with pytest.raises(subprocess.CalledProcessError) as refused:
        control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert "violates PodSecurity" in refused.value.stderr


def test_a_workflow_name_over_63_characters_is_refused_by_the_crd(kube):
    too_long = workflow("w" * 64, [step("a")])
    with pytest.raises(subprocess.CalledProcessError) as refused:
        kube.kubectl("apply", "-f", "-", input=json.dumps(too_long))
    assert "metadata.name may have at most 63 characters" in refused.value.stderr


@pytest.mark.parametrize(
    "name, step_name",
    [("a" * 51 + ".bc", "long-step-name"), ("x" * 63, "s" * 63), ("a.b.c" + "d" * 58, "z" * 63)],
)
def test_jobs_for_names_at_their_limits_are_accepted_by_the_api_server(kube, name, step_name):
    from stepflow.operator.jobs import build_job
    from stepflow.plan import compile_workflow

    plan = compile_workflow(workflow(name, [step(step_name)]))
    job = build_job(plan, plan.steps[0], namespace=kube.namespace, owner_uid="0", generation=2**31)
    del job["metadata"]["ownerReferences"]  # no such owner: only the names are on trial here
    out = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(job))
    assert "created (server dry run)" in out


def test_owner_reference_enforcement_is_on_and_the_operator_may_block_deletion(kube, operator):
    """OpenShift's OwnerReferencesPermissionEnforcement is on in this tier: a Job that blocks its
    Workflow's deletion needs update on workflows/finalizers, which deploy/ grants (and only that:
    the operator writes no finalizer). Without the grant every Job is refused, as shown here."""
    kube.create(workflow("owned", [step("a")]))
    assert kube.wait_phase("owned")["phase"] == "Succeeded"
    owner = kube.get("jobs", "owned-1-a")["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["blockOwnerDeletion"]) == ("Workflow", True)
    # A ServiceAccount that may create Jobs and nothing else cannot set blockOwnerDeletion.
    kube.kubectl("create", "serviceaccount", "jobs-only")
    kube.kubectl("create", "role", "jobs-only", "--verb=create", "--resource=jobs.batch")
    kube.kubectl("create", "rolebinding", "jobs-only", "--role=jobs-only",
                 f"--serviceaccount={kube.namespace}:jobs-only")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "blocker", "ownerReferences": [
        {**owner, "name": "owned"}]}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "alpine:3.20"}]}}}}
    with pytest.raises(subprocess.CalledProcessError) as refused:
        kube.kubectl("create", f"--as=system:serviceaccount:{kube.namespace}:jobs-only", "-f", "-",
                     input=json.dumps(job))
    assert "cannot set blockOwnerDeletion" in refused.value.stderr
