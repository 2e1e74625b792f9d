"""Step types (T2-T5) on the real control plane: the API server checks the types, the
operator resolves them from its watches, waits for missing ones and keeps what a run resolved."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from kube.realcluster import outcome, wait_for, workflow
from stepflow.env_values import expand_references

HOSTILE = "$(SECRET_TOKEN) ;rm -rf / $$ `id`"


def step_type(name: str, image: str, kind: str = "StepType", **spec: object) -> dict:
    spec = {"image": image, "script": 'echo "deploying $target"',
            "params": [{"name": "target", "default": "staging"}], **spec}
    return {"apiVersion": "stepflow.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def typed(name: str, type_name: str, duration: str = "200ms", **fields: object) -> dict:
    return {"name": name, "type": type_name, "podMetadata": outcome(duration=duration), **fields}


def container(kube, job: str) -> dict:
    return kube.get("jobs", job)["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture
def cluster_types(kube) -> Iterator[list[str]]:
    """ClusterStepTypes outlive the test's namespace: the names created are deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            kube.delete("clustersteptypes", name)


def test_a_namespaced_type_shadows_a_cluster_one_and_params_arrive_literally(kube, operator, cluster_types):
    name = f"deploy-{kube.namespace[-6:]}"
    cluster_types.append(name)
    kube.create(step_type(name, "registry.example/cluster:1", kind="ClusterStepType"))
    kube.create(step_type(name, "registry.example/team:1", env=[{"name": "WHERE", "value": "to $(target)"}]))
    kube.create(workflow("typed", [typed("ship", name, **{"with": {"target": HOSTILE}})]))
    status = kube.wait_phase("typed")
    assert status["phase"] == "Succeeded", status.get("message")
    spec = container(kube, "typed-1-ship")
    assert spec["image"] == "registry.example/team:1"  # the namespace's type wins (T2)
    assert spec["command"] == ["sh", "-c", 'echo "deploying $target"']
    env = {v["name"]: v.get("value") for v in spec["env"]}
    assert spec["env"][0]["name"] == "target"  # declared first, so $(target) works below it (T3)
    # As the kubelet expands it: the value itself, never a variable or a shell word of it.
    assert expand_references(env["target"], {}) == HOSTILE
    assert expand_references(env["WHERE"], {"target": HOSTILE}) == f"to {HOSTILE}"
    kept = status["stepTypes"][name]
    assert kept["kind"] == "StepType" and kept["spec"]["image"] == "registry.example/team:1"
    assert kube.get("jobs", "typed-1-ship")["metadata"]["annotations"]["stepflow.dev/step-type"] == name


def test_kubectl_lists_both_kinds_with_their_columns_and_explains_them(kube, cluster_types):
    name = f"lister-{kube.namespace[-6:]}"
    cluster_types.append(name)
    kube.create(step_type(name, "registry.example/cluster:1", kind="ClusterStepType",
                          description="lists things"))
    kube.create(step_type("local", "registry.example/team:1"))
    namespaced = kube.kubectl("get", "stype").splitlines()
    assert namespaced[0].split() == ["NAME", "PARAMS", "IMAGE", "AGE"]
    assert namespaced[1].split()[:3] == ["local", "target", "registry.example/team:1"]
    wide = kube.kubectl("get", "cstype", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "PARAMS", "IMAGE", "AGE", "DESCRIPTION"]
    cluster = {line.split()[0]: line.split() for line in wide[1:]}
    assert cluster[name][1:3] == ["target", "registry.example/cluster:1"]
    assert cluster[name][-2:] == ["lists", "things"]
    explained = kube.kubectl("explain", "steptype.spec.params")
    assert "default" in explained and "enum" in explained and "required" in explained
    assert "Never when it runs" in kube.kubectl("explain", "clustersteptype.spec")


def test_the_api_server_refuses_what_a_type_may_not_say(kube):
    bad = step_type("when-not", "alpine:3.20", when="true", parallel=True)
    with pytest.raises(Exception) as refused:
        kube.kubectl("apply", "--validate=strict", "-f", "-", input=_yaml(bad))
    assert 'unknown field "spec.when"' in str(refused.value)
    both = step_type("both", "alpine:3.20", command=["true"])
    with pytest.raises(Exception) as refused:
        kube.create(both)
    assert "set command or script, not both" in str(refused.value)


def test_a_workflow_applied_before_its_types_waits_then_runs(kube, operator):
    kube.create(workflow("early", [typed("build", "builder"), typed("ship", "shipper")]))
    status = wait_for(lambda: (s := kube.status("early")).get("reason") == "StepTypeNotFound" and s,
                      message="the workflow never waited for its types")
    assert status["phase"] == "Pending"
    assert '"builder"' in status["message"] and '"shipper"' in status["message"]
    events = wait_for(lambda: [e for e in kube.events("early") if e["reason"] == "StepTypeNotFound"])
    assert events[0]["type"] == "Warning"
    assert kube.jobs("early") == []
    kube.create(step_type("builder", "registry.example/builder:1"))
    wait_for(lambda: '"builder"' not in kube.status("early")["message"],
             message="the message never dropped the type that appeared")
    assert kube.jobs("early") == []  # one type is not enough
    kube.create(step_type("shipper", "registry.example/shipper:1"))
    status = kube.wait_phase("early")
    assert status["phase"] == "Succeeded", status.get("message")
    assert sorted(status["stepTypes"]) == ["builder", "shipper"]


def test_a_spec_waiting_for_its_types_may_still_be_fixed(kube, operator):
    kube.create(step_type("real-name", "registry.example/x:1"))
    kube.create(workflow("typo", [typed("a", "reel-name")]))
    wait_for(lambda: kube.status("typo").get("reason") == "StepTypeNotFound")
    kube.patch("workflows", "typo", {"spec": {"steps": [typed("a", "real-name")]}})
    assert kube.wait_phase("typo")["phase"] == "Succeeded"


def test_a_type_changed_mid_run_changes_nothing_in_that_run_even_across_a_restart(kube, start_operator):
    first = start_operator()
    kube.create(step_type("tool", "registry.example/tool:1"))
    hold = {"name": "first", "type": "tool", "podMetadata": outcome(hold=True)}
    kube.create(workflow("pinned", [hold, typed("second", "tool")]))
    wait_for(lambda: kube.step_phase("pinned", "first") == "Running")
    kube.patch("steptypes", "tool", {"spec": {"image": "registry.example/tool:2"}})
    first.kill()
    kube.delete("steptypes", "tool")
    start_operator()
    kube.release("pinned-1-first")
    status = kube.wait_phase("pinned")
    assert status["phase"] == "Succeeded", status.get("message")
    assert container(kube, "pinned-1-second")["image"] == "registry.example/tool:1"
    # Changing a type never starts a run by itself.
    kube.create(step_type("tool", "registry.example/tool:3"))
    version = kube.get("workflows", "pinned")["metadata"]["resourceVersion"]
    time.sleep(1.5)
    assert kube.get("workflows", "pinned")["metadata"]["resourceVersion"] == version
    # The next run resolves again.
    kube.patch("workflows", "pinned", {"spec": {"runToken": "again",
                                                "steps": [typed("first", "tool"), typed("second", "tool")]}})
    status = wait_for(lambda: (s := kube.status("pinned")).get("runGeneration") == 2
                      and s["phase"] == "Succeeded" and s, timeout=60, message="no second run")
    assert container(kube, "pinned-2-second")["image"] == "registry.example/tool:3"
    assert status["stepTypes"]["tool"]["spec"]["image"] == "registry.example/tool:3"


def _yaml(obj: dict) -> str:
    import yaml

    return yaml.safe_dump(obj)
