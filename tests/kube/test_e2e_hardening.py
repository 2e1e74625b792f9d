"""Issue 28 (hardening, round two) on the real control plane: an output never reaches a shell
nor the kubelet's expansion, and a hostile quantity never ties up the operator."""

from __future__ import annotations

from kube.realcluster import step, workflow
from stepflow.env_values import expand_references

# What an attacker's PR title could say: a Secret declared before it, an escape, shell.
TITLE = "fix typo $(TOKEN) for $$5 `id`; touch pwned"


def reads(var: str, producer: str, output: str) -> dict:
    return {"name": var, "valueFrom": {"stepOutput": {"step": producer, "output": output}}}


def test_an_output_pasted_into_a_script_through_a_variable_is_invalid_spec_with_no_job(kube, operator):
    doc = workflow("injected", [
        step("build", outputs=["title"], message="title=hello; touch pwned"),
        step("deploy", script="echo $(MSG) $$$(TITLE)",
             env=[reads("TITLE", "build", "title"), {"name": "MSG", "value": "PR: $(TITLE)"}]),
    ])
    kube.create(doc)  # the CRD cannot tell; the operator reads it as Kubernetes would expand it
    status = kube.wait_phase("injected")
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
    assert "spec.steps[1].script" in status["message"] and "TITLE -> MSG" in status["message"]
    assert kube.jobs("injected") == []


def test_an_output_reaches_the_consumers_job_as_text_the_kubelet_leaves_alone(kube, operator):
    token = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "github", "key": "token"}}}
    doc = workflow("literal", [
        step("build", outputs=["title"], message=f"title={TITLE}"),
        step("notify", env=[token, reads("TITLE", "build", "title"),
                            {"name": "MSG", "value": "PR: $(TITLE)"}]),
    ])
    kube.create(doc)
    status = kube.wait_phase("literal")
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["steps"]["build"]["outputs"] == {"title": TITLE}
    job = kube.get("jobs", "literal-1-notify")  # as the API server stores it
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [v["name"] for v in env] == ["STEPFLOW_OUTPUTS", "TOKEN", "TITLE", "MSG"]
    # The kubelet: each value expanded with those declared before it (TOKEN from its Secret).
    values = {"STEPFLOW_OUTPUTS": env[0]["value"], "TOKEN": "s3cret"}
    for var in env[2:]:
        values[var["name"]] = expand_references(var["value"], values)
    assert values["TITLE"] == TITLE and values["MSG"] == f"PR: {TITLE}"


def test_an_operator_stays_responsive_with_a_hostile_quantity_applied(kube, operator):
    hostile = workflow("hostile", [step("a", resources={"requests": {"cpu": "1e100000000"}})],
                       maxResources={"cpu": "4"})
    kube.create(hostile)  # the CRD's pattern lets it through, as Kubernetes' own OpenAPI would
    kube.create(workflow("after", [step("b")]))
    assert kube.wait_phase("after")["phase"] == "Succeeded"  # the operator's one process was not stuck
    status = kube.wait_phase("hostile")
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec"), status
    assert "spec.steps[0].resources.requests.cpu" in status["message"] and "2^63-1" in status["message"]
    assert kube.jobs("hostile") == []  # the API server would spend 30 s on such a Job, then time out
