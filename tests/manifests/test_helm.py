"""The Helm chart, offline: `helm lint --strict`, what `helm template` renders passes
kubernetes-validate --strict, the chart renders the objects deploy/'s kustomize bases do (one
source of truth), and values.schema.json refuses bad values before anything reaches a cluster.
What it does on a cluster is tests/kube/test_helm.py's."""

from __future__ import annotations

import json

import pytest
import yaml

import stepflow
from manifests import render
from manifests.checks import DEPLOY, kubernetes_errors
from manifests.helm import CHART, helm, template, without_helm_labels

EVERY_OPTION = {
    "scope": "namespace",
    "fullnameOverride": "flows",
    "image": {"repository": "registry.example/stepflow-operator", "tag": "0.1.0"},
    "imagePullSecrets": [{"name": "pull"}],
    "replicaCount": 3,
    "leaderElection": {"leaseDuration": 20, "renewDeadline": 15, "retryPeriod": 3},
    "maxRunningJobs": 40,
    "workers": 16,
    "metrics": {"port": 9100, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "grafanaDashboard": {"enabled": True},
    # Helm merges maps with the defaults: null drops the default CPU limit.
    "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": None, "memory": "512Mi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/team": "platform"},
}


def key(obj):
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def container(objects):
    (deployment,) = by_kind(objects, "Deployment")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("values", [None, EVERY_OPTION], ids=["defaults", "every-option"])
def test_helm_lint_strict_passes(values, tmp_path):
    args = []
    if values:
        (tmp_path / "values.json").write_text(json.dumps(values))
        args = ["--values", str(tmp_path / "values.json")]
    out = helm("lint", "--strict", str(CHART), *args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("values", [None, {"scope": "namespace"}, EVERY_OPTION],
                         ids=["defaults", "namespaced", "every-option"])
def test_what_helm_template_renders_passes_kubernetes_validate_strict(values):
    objects = template(values, crds=True)
    # kubernetes-validate knows no ServiceMonitor (prometheus-operator's CRD): checked below.
    monitors = by_kind(objects, "ServiceMonitor")
    checked = [o for o in objects if o["kind"] != "ServiceMonitor"]
    assert kubernetes_errors(checked) == []
    for monitor in monitors:
        (service,) = by_kind(objects, "Service")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service["spec"]["ports"][0]["name"]]


@pytest.mark.parametrize(("values", "namespace", "base"), [
    (None, "stepflow-system", DEPLOY),
    ({"scope": "namespace"}, "stepflow", DEPLOY / "namespaced"),
], ids=["cluster", "namespaced"])
def test_default_values_render_what_kustomize_renders(values, namespace, base):
    """One source of truth: with default values the chart makes deploy/'s objects, field for
    field, but for Helm's own labels and the Namespace, which Helm leaves to --create-namespace."""
    kustomize = sorted((o for o in render.render(base) if o["kind"] != "Namespace"), key=key)
    chart = sorted((without_helm_labels(o) for o in template(values, namespace, crds=base == DEPLOY)),
                   key=key)
    assert [key(o) for o in chart] == [key(o) for o in kustomize]
    for ours, theirs in zip(chart, kustomize, strict=True):
        assert ours == theirs, f"{key(ours)} differs from deploy/'s"


def test_every_option_reaches_the_operator_and_its_pod():
    objects = template(EVERY_OPTION, "team-a")
    args = container(objects)["args"]
    assert args[:5] == ["--namespace=$(POD_NAMESPACE)", "--standalone", "--leader-elect",
                        "--liveness=http://0.0.0.0:8080/healthz", "--leader-elect-lease-name=flows"]
    assert {"--leader-elect-lease-duration=20", "--leader-elect-renew-deadline=15",
            "--leader-elect-retry-period=3", "--max-running-jobs=40", "--workers=16"} <= set(args)
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert container(objects)["image"] == "registry.example/stepflow-operator:0.1.0"
    assert container(objects)["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"},
                                               "limits": {"memory": "512Mi"}}
    assert {"name": "STEPFLOW_METRICS_PORT", "value": "9100"} in container(objects)["env"]
    assert pod["nodeSelector"] == EVERY_OPTION["nodeSelector"]
    assert pod["tolerations"] == EVERY_OPTION["tolerations"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    # The Lease the operator is told to use is the one its Role names.
    (lease_role,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "flows-lease"]
    assert [r["resourceNames"] for r in lease_role["rules"] if "resourceNames" in r] == [["flows"]]
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")


def test_the_grafana_dashboard_configmap_is_deploy_grafanas_dashboard():
    copy = CHART / "dashboards" / "stepflow-dashboard.json"
    original = DEPLOY / "grafana" / "stepflow-dashboard.json"
    assert copy.read_bytes() == original.read_bytes(), "copy deploy/grafana's dashboard into the chart"
    (config_map,) = by_kind(template({"grafanaDashboard": {"enabled": True}}), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["stepflow-dashboard.json"]) == json.loads(original.read_text())
    assert not by_kind(template(), "ConfigMap")


def test_one_replica_has_no_disruption_budget_that_would_block_every_drain():
    objects = template({"replicaCount": 1})
    assert not by_kind(objects, "PodDisruptionBudget")
    assert "--leader-elect" in container(objects)["args"]


@pytest.mark.parametrize(("values", "words"), [
    ({"replicaCount": "two"}, "replicaCount"),
    ({"replicas": 3}, "replicas"),
    ({"scope": "everywhere"}, "scope"),
    ({"maxRunningJobs": 0}, "maxRunningJobs"),
    ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "leaderElection"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"resources": {"limits": {"memory": "lots"}}}, "memory"),
    ({"metrics": {"port": 8080}}, "port"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else v)
def test_values_schema_refuses_bad_values(values, words, tmp_path):
    (tmp_path / "values.json").write_text(json.dumps(values))
    refused = helm("template", "stepflow", str(CHART), "--values", str(tmp_path / "values.json"), check=False)
    assert refused.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in refused.stderr
    assert words in refused.stderr


def test_the_charts_app_version_is_the_operators():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == stepflow.__version__
