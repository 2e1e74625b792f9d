"""deploy/: kustomize output that Kubernetes accepts, least-privilege RBAC, a locked-down pod."""

from __future__ import annotations

import shutil

import pytest

from manifests import render
from manifests.checks import DEPLOY, kubernetes_errors

VARIANTS = {"cluster": DEPLOY, "namespaced": DEPLOY / "namespaced"}
IMAGE = "stepflow-operator"  # a placeholder to set with `kustomize edit set image`; none is published
LIVENESS = "--liveness=http://0.0.0.0:8080/healthz"
OPERATOR_RULES = {
    ("stepflow.dev", "workflows"): {"list", "watch"},
    ("stepflow.dev", "workflows/status"): {"patch"},
    ("stepflow.dev", "workflows/finalizers"): {"update"},
    ("stepflow.dev", "steppools"): {"list", "watch"},
    ("stepflow.dev", "steppools/status"): {"patch"},
    ("stepflow.dev", "steptypes"): {"list", "watch"},
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "events"): {"create", "list"},
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request):
    return request.param, render.render(VARIANTS[request.param])


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_kubernetes_accepts_every_object(variant):
    _, objects = variant
    assert objects
    assert kubernetes_errors(objects) == []


@pytest.mark.parametrize("name", list(VARIANTS))
def test_small_renderer_matches_kubectl(name):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not on PATH; the tests render deploy/ with the Python renderer")
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    python = sorted(render.render(VARIANTS[name], use_kubectl=False), key=key)
    assert python == sorted(render.render(VARIANTS[name], use_kubectl=True), key=key)


def test_cluster_install_contents():
    objects = render.render(DEPLOY)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["CustomResourceDefinition"] * 4 + ["Namespace",
                            "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Deployment", "Service",
                            "Role", "RoleBinding", "PodDisruptionBudget"])
    assert by_kind(objects, "Namespace")[0]["metadata"]["name"] == "stepflow-system"
    assert {c["metadata"]["name"] for c in by_kind(objects, "CustomResourceDefinition")} == {
        "workflows.stepflow.dev", "steppools.stepflow.dev", "steptypes.stepflow.dev",
        "clustersteptypes.stepflow.dev"}
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Deployment", "Service", "Role", "RoleBinding",
                           "PodDisruptionBudget"):
            assert obj["metadata"]["namespace"] == "stepflow-system"
    subject = by_kind(objects, "ClusterRoleBinding")[0]["subjects"][0]
    assert subject == {"kind": "ServiceAccount", "name": "stepflow-operator",
                       "namespace": "stepflow-system"}


def test_namespaced_install_has_no_cluster_objects():
    objects = render.render(DEPLOY / "namespaced")
    assert sorted(o["kind"] for o in objects) == sorted(
        ["ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "Role", "RoleBinding",
         "PodDisruptionBudget"])
    namespace = objects[0]["metadata"]["namespace"]
    assert all(o["metadata"]["namespace"] == namespace for o in objects)
    for binding in by_kind(objects, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == namespace


def _rules(role):
    granted = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames tricks
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_rbac_is_least_privilege(variant):
    name, objects = variant
    roles = [r for r in by_kind(objects, "ClusterRole" if name == "cluster" else "Role")
             if r["metadata"]["name"] == "stepflow-operator"]
    assert len(roles) == 1
    # A Role cannot grant a cluster-scoped kind: only the cluster install reads ClusterStepTypes.
    expected = {**OPERATOR_RULES, **({("stepflow.dev", "clustersteptypes"): {"list", "watch"}}
                                     if name == "cluster" else {})}
    assert _rules(roles[0]) == expected
    text = str(roles[0]["rules"])
    assert "*" not in text and "secrets" not in text


def test_operator_deployment(variant):
    name, objects = variant
    (deployment,) = by_kind(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2  # a leader and a warm standby (L1)
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "stepflow-operator"
    assert pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # OpenShift's restricted-v2 assigns a UID of the namespace's range and refuses a pod naming
    # another: the image's numeric USER applies elsewhere.
    assert "runAsUser" not in pod["securityContext"] and "runAsGroup" not in pod["securityContext"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"requests", "limits"} <= set(container["resources"])
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    assert ports["metrics"] == 9090
    args = container["args"]
    assert "--standalone" in args and LIVENESS in args and "--leader-elect" in args
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # STEPFLOW_CRD_WAIT's default
    if name == "cluster":
        assert "--all-namespaces" in args
    else:
        assert "--namespace=$(POD_NAMESPACE)" in args and "--all-namespaces" not in args
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_metrics_service(variant):
    _, objects = variant
    (service,) = by_kind(objects, "Service")
    (deployment,) = by_kind(objects, "Deployment")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_lease_rights_are_for_the_one_lease_in_the_operators_namespace(variant):
    _, objects = variant
    (role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "stepflow-operator-lease"]
    assert role["metadata"]["namespace"] == by_kind(objects, "Deployment")[0]["metadata"]["namespace"]
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                      "resourceNames": ["stepflow-operator"], "verbs": ["get", "update", "watch"]}]
    unnamed = [r for r in role["rules"] if not r.get("resourceNames")]
    assert unnamed == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]
    bindings = by_kind(objects, "RoleBinding")
    (binding,) = [b for b in bindings if b["roleRef"]["name"] == "stepflow-operator-lease"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "stepflow-operator",
                                    "namespace": role["metadata"]["namespace"]}]
    (budget,) = by_kind(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
