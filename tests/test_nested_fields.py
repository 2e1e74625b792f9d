"""Fields at every depth (issue 28, item 11): a typo inside a nested object is refused where it is
written, with the same did-you-mean as at the top, and validate refuses what the API server
refuses when it admits the Workflow or the step's Job. ``stepflow run`` and the operator read a
file as ``validate`` does, so neither runs what validate would refuse."""

from __future__ import annotations

import pytest

from builders import step, workflow, write_workflow
from stepflow.cli import main
from stepflow.cluster_refusals import cluster_errors
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError


def errors_of(doc) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_workflow(doc)
    return [str(e) for e in info.value.errors]


def reads(var: str, **source) -> dict:
    return {"name": var, "valueFrom": {"stepOutput": source}}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"env": [{"name": "X", "valu": "1"}]},
     'spec.steps[1].env[0].valu: step "b": unknown field (did you mean "value"?)'),
    ({"env": [{"name": "X", "valueFrom": {"stepoutput": {"step": "a", "output": "o"}}}]},
     'spec.steps[1].env[0].valueFrom.stepoutput: step "b": unknown field (did you mean "stepOutput"?)'),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"nmae": "s", "key": "k"}}}]},
     'spec.steps[1].env[0].valueFrom.secretKeyRef.nmae: step "b": unknown field (did you mean "name"?)'),
    ({"resources": {"request": {"cpu": 100}}},
     'spec.steps[1].resources.request: step "b": unknown field (did you mean "requests"?)'),
    ({"securityContext": {"runAsNonroot": True}},
     'spec.steps[1].securityContext.runAsNonroot: step "b": unknown field (did you mean "runAsNonRoot"?)'),
    ({"securityContext": {"capabilities": {"drpo": ["ALL"]}}},
     'spec.steps[1].securityContext.capabilities.drpo: step "b": unknown field (did you mean "drop"?)'),
    ({"podSecurityContext": {"seccompProfile": {"type": "Runtimedefault"}}},
     "spec.steps[1].podSecurityContext.seccompProfile.type: step \"b\": must be one of RuntimeDefault, "
     "Localhost, Unconfined; got string 'Runtimedefault' (did you mean \"RuntimeDefault\"?)"),
    ({"tolerations": [{"key": "gpu", "efect": "NoSchedule"}]},
     'spec.steps[1].tolerations[0].efect: step "b": unknown field (did you mean "effect"?)'),
    ({"securityContext": {"runAsUser": "1000"}},
     "spec.steps[1].securityContext.runAsUser: step \"b\": must be an integer, got string '1000'"),
    ({"podMetadata": {"annotations": {"a": "x" * 5000}}},
     'spec.steps[1].podMetadata.annotations.a: step "b": is 5,000 characters long; at most 4,096 are '
     "allowed"),
])
def test_a_typo_or_a_wrong_value_at_any_depth_is_refused_where_it_is_written(fields, expected):
    doc = workflow(step("a", outputs=["o"]), step("b", **fields))
    assert errors_of(doc) == [expected]


def test_a_step_output_with_a_misspelt_key_names_the_key_not_a_dict():
    found = errors_of(workflow(step("a", outputs=["o"]), step("b", env=[reads("X", step="a", outptu="o")])))
    assert found == ['spec.steps[1].env[0].valueFrom.stepOutput.output: step "b": is required',
                     'spec.steps[1].env[0].valueFrom.stepOutput.outptu: step "b": unknown field '
                     '(did you mean "output"?)']
    assert not any("{" in e for e in found)


def test_typos_in_defaults_and_metadata_are_refused_too():
    doc = workflow(step("a"), defaults={"env": [{"name": "A", "vaule": "1"}]})
    doc["metadata"]["namespce"] = "team-a"
    assert errors_of(doc) == ['metadata.namespce: unknown field (did you mean "namespace"?)',
                              'spec.defaults.env[0].vaule: unknown field (did you mean "value"?)']


def test_a_variable_declared_twice_in_one_list_is_refused_as_the_api_server_refuses_it():
    doc = workflow(step("a", env=[{"name": "X", "value": "1"}, {"name": "Y"}, {"name": "X", "value": "2"}]))
    assert errors_of(doc) == ['spec.steps[0].env[2].name: step "a": declares "X" again (also env[0]); '
                              "each variable is declared once"]
    # A step's variable of a defaults' name overrides it: that is no duplicate.
    compile_workflow(workflow(step("a", env=[{"name": "X", "value": "1"}]),
                              defaults={"env": [{"name": "X", "value": "0"}]}))


def test_a_value_and_a_value_from_together_or_two_sources_are_refused():
    found = errors_of(workflow(step("a", env=[
        {"name": "X", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"},
                                    "configMapKeyRef": {"name": "c", "key": "k"}}}])))
    assert found == [
        'spec.steps[0].env[0].valueFrom: step "a": may not be set together with a non-empty value',
        'spec.steps[0].env[1].valueFrom: step "a": must name exactly one source, got 2 (secretKeyRef, '
        "configMapKeyRef)"]


@pytest.mark.parametrize(("resources", "expected"), [
    ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
     'spec.steps[0].resources.requests.cpu: step "a": cpu 2 is more than its limit (1); a request may not '
     "pass its limit"),
    ({"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 2}},
     'spec.steps[0].resources.requests.nvidia.com/gpu: step "a": nvidia.com/gpu 1 must equal its limit '
     "(2): nvidia.com/gpu cannot be overcommitted"),
    ({"requests": {"nvidia.com/gpu": 1}},
     'spec.steps[0].resources.limits.nvidia.com/gpu: step "a": is required: nvidia.com/gpu cannot be '
     "overcommitted, so a request needs a limit (set only the limit: the request defaults to it)"),
    ({"limits": {"nvidia.com/gpu": "0.5"}},
     'spec.steps[0].resources.limits.nvidia.com/gpu: step "a": nvidia.com/gpu must be a whole number, '
     "got 500m"),
    ({"requests": {"cpus": "1"}},
     "spec.steps[0].resources.requests.cpus: step \"a\": 'cpus' is not a container resource (cpu, memory, "
     "ephemeral-storage, hugepages-<size>, or a name with a domain such as nvidia.com/gpu) "
     '(did you mean "cpu"?)'),
])
def test_resources_the_api_server_would_refuse_in_the_job_are_refused_by_validate(resources, expected):
    plan = compile_workflow(workflow(step("a", image="alpine", resources=resources)))
    assert [str(e) for e in cluster_errors(plan)] == [expected]


def test_requests_within_their_limits_pass():
    plan = compile_workflow(workflow(step("a", image="alpine", resources={
        "requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 2},
        "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 2, "hugepages-2Mi": "4Mi"}})))
    assert cluster_errors(plan) == []


def test_run_refuses_a_nested_typo_instead_of_running_with_an_empty_variable(capsys, tmp_path):
    """Before, `valu` ran the step with X="" (and `request` escaped maxResources)."""
    out = tmp_path / "x.txt"
    doc = workflow(step("a", script=f'printf %s "$X" > {out}', env=[{"name": "X", "valu": "1"}],
                        resources={"request": {"cpu": "100"}}), maxResources={"cpu": "4"})
    file = write_workflow(tmp_path / "wf.yaml", doc)
    code = main(["run", str(file), "--logs", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert 'env[0].valu: step "a": unknown field (did you mean "value"?)' in err
    assert 'resources.request: step "a": unknown field (did you mean "requests"?)' in err


def test_the_operator_refuses_the_same_as_invalid_spec():
    from scripted_api import KEY, setup

    reconciler, api, _ = setup([{"name": "a", "script": "true", "env": [{"name": "X", "valu": "1"}],
                                 "resources": {"requests": {"nvidia.com/gpu": 1}}}])
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec") and api.created == []
    assert any('env[0].valu: step "a": unknown field (did you mean "value"?)' in e for e in status["errors"])
