"""Step types (T1-T5), in the pure layer: each test breaks if its rule goes.

The operator's side (waiting for a type, keeping what a run resolved) is in
tests/operator/test_reconcile_step_types.py; the real API server's in
tests/kube/test_e2e_step_types.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import workflow
from stepflow import fields
from stepflow.cluster_refusals import cluster_errors
from stepflow.local import LocalRun
from stepflow.operator.jobs import build_job
from stepflow.plan import Plan, compile_workflow
from stepflow.spec import SpecError
from stepflow.step_types import Catalog, StepType, read_step_type, resolve

HOSTILE = ["$(SECRET_VAR)", "$$", "$$(HOME)", ";rm -rf /", "a\nb", "`id`", "$(", "'\"", "$HOME"]


def type_doc(name: str = "scan", kind: str = "StepType", **spec: Any) -> dict[str, Any]:
    spec = {"image": "scanner:1.2", "script": 'echo "$TARGET"', **spec}
    spec = {k: v for k, v in spec.items() if v is not None}  # script=None: a type without one
    return {"apiVersion": "stepflow.dev/v1alpha1", "kind": kind, "metadata": {"name": name},
            "spec": spec}


def step_type(name: str = "scan", kind: str = "StepType", version: str = "1", **spec: Any) -> StepType:
    found, errors = read_step_type(type_doc(name, kind, **spec))
    assert not errors and found is not None, errors
    return StepType(found.kind, found.name, found.spec, version)


def typed(name: str, type_name: str = "scan", **fields_: Any) -> dict[str, Any]:
    return {"name": name, "type": type_name, **fields_}


def compiled(*steps: dict[str, Any], types: list[StepType], **spec: Any) -> Plan:
    return compile_workflow(workflow(*steps, **spec), Catalog.of(types))


def errors_of(*steps: dict[str, Any], types: list[StepType], **spec: Any) -> list[str]:
    with pytest.raises(SpecError) as refused:
        compiled(*steps, types=types, **spec)
    return [str(e) for e in refused.value.errors]


TARGET = {"name": "TARGET", "description": "what to scan"}

# --- T1: a type says how a step runs, never when -------------------------------------------------


@pytest.mark.parametrize("when", fields.WHEN_FIELDS)
def test_a_type_refuses_every_field_that_says_when(when):
    doc = type_doc()
    doc["spec"][when] = "x"  # also `name`, which type_doc() takes for metadata.name
    _, errors = read_step_type(doc)
    assert [e.path for e in errors] == [f"spec.{when}"]
    assert "never when" in errors[0].message and 'StepType "scan"' in errors[0].message


def test_a_type_may_set_each_field_that_says_how():
    found, errors = read_step_type(type_doc(
        env=[{"name": "A", "value": "1"}], resources={"requests": {"cpu": "100m"}},
        serviceAccountName="deployer", timeoutSeconds=60, retries=2, description="scans",
        params=[TARGET, {"name": "LEVEL", "default": "high", "enum": ["low", "high"]}]))
    assert not errors
    assert [p["name"] for p in found.params] == ["TARGET", "LEVEL"]
    assert "description" not in found.how and "params" not in found.how


@pytest.mark.parametrize("spec, path, words", [
    ({"imag": "x"}, "spec.imag", 'did you mean "image"'),
    ({"command": ["a"], "script": "b"}, "spec", "command or script, not both"),
    ({"script": None, "args": ["x"]}, "spec.args", "only allowed together with command"),
    ({"params": [{"name": "1st"}]}, "spec.params[0].name", "not a param name"),
    ({"params": [TARGET, TARGET]}, "spec.params[1].name", "twice"),
    ({"params": [{"name": "L", "default": "x", "enum": ["a"]}]}, "spec.params[0].default", "not one of"),
    ({"params": [{"name": "L", "default": 3}]}, "spec.params[0].default", "must be a string"),
    ({"retries": -1}, "spec.retries", ""),
])
def test_a_bad_type_is_refused_with_its_field_path(spec, path, words):
    doc = type_doc(**spec)
    found, errors = read_step_type(doc, where="[document 2] ")
    assert found is None
    assert any(e.path == f"[document 2] {path}" and words in e.message for e in errors), errors


# --- T2: namespace before cluster; step over type over defaults -----------------------------------


def test_a_namespaced_type_shadows_a_cluster_type_of_the_same_name():
    cluster = step_type(kind="ClusterStepType", image="cluster:1")
    namespaced = step_type(image="team:1")
    assert Catalog.of([cluster, namespaced]).find("scan") is namespaced
    assert Catalog.of([namespaced, cluster]).find("scan") is namespaced
    assert Catalog.of([cluster]).find("scan") is cluster


def test_the_step_wins_over_the_type_and_the_type_over_defaults():
    plan = compiled(typed("a"), typed("b", image="mine:2", timeoutSeconds=5),
                    types=[step_type(image="scanner:1.2", timeoutSeconds=60, params=[])],
                    defaults={"image": "default:1"})
    a, b = plan.spec.step("a"), plan.spec.step("b")
    assert (a.image, a.timeout_seconds) == ("scanner:1.2", 60)
    assert (b.image, b.timeout_seconds) == ("mine:2", 5)


def test_command_args_and_script_come_as_one_from_the_step_or_the_type():
    kind = step_type(script=None, command=["scan", "--all"], args=["x"], params=[])
    plan = compiled(typed("own", script="echo mine"), typed("inherits"), types=[kind])
    own, inherits = plan.spec.step("own"), plan.spec.step("inherits")
    assert (own.script, own.command, own.args) == ("echo mine", (), ())
    assert (inherits.script, inherits.command, inherits.args) == (None, ("scan", "--all"), ("x",))


def test_a_steps_args_alone_keep_the_types_command_as_a_pods_args_keep_the_entrypoint():
    kind = step_type(script=None, command=["terraform"], args=["plan"], params=[])
    plan = compiled(typed("a", args=["apply", "-auto-approve"]), typed("b"), types=[kind])
    a, b = plan.spec.step("a"), plan.spec.step("b")
    assert (a.command, a.args) == (("terraform",), ("apply", "-auto-approve"))
    assert (b.command, b.args) == (("terraform",), ("plan",))
    errors = errors_of(typed("c", args=["x"]), types=[step_type(params=[])])  # the type has a script
    assert any(e.startswith("spec.steps[0]") and "script" in e and "args" in e for e in errors), errors


def test_env_merges_by_name_with_the_types_first():
    kind = step_type(env=[{"name": "A", "value": "type-a"}, {"name": "B", "value": "type-b"}], params=[])
    plan = compiled(typed("a", env=[{"name": "B", "value": "step-b"}, {"name": "C", "value": "c"}]),
                    types=[kind])
    assert [(v["name"], v["value"]) for v in plan.spec.step("a").env] == [
        ("A", "type-a"), ("B", "step-b"), ("C", "c")]


# --- T3: params --------------------------------------------------------------------------------


def test_params_are_completed_with_defaults_and_kept_in_declared_order():
    kind = step_type(params=[TARGET, {"name": "LEVEL", "default": "high"}])
    plan = compiled(typed("a", **{"with": {"TARGET": "repo"}}), types=[kind])
    assert list(plan.spec.step("a").params.items()) == [("TARGET", "repo"), ("LEVEL", "high")]


@pytest.mark.parametrize("given_, path, words", [
    ({"TARGT": "x"}, "spec.steps[1].with.TARGT", 'unknown param (did you mean "TARGET"?)'),
    ({}, "spec.steps[1].with.TARGET", "required"),
    ({"TARGET": "x", "LEVEL": "max"}, "spec.steps[1].with.LEVEL", "is not one of low, high"),
    ({"TARGET": 3}, "spec.steps[1].with.TARGET", "must be a string"),
    ({"TARGET": "a\0b"}, "spec.steps[1].with.TARGET", "NUL"),
    ({"TARGET": "x" * (fields.MAX_PARAM_VALUE + 1)}, "spec.steps[1].with.TARGET", "at most"),
])
def test_a_bad_param_names_the_step_the_type_and_the_field(given_, path, words):
    kind = step_type(params=[TARGET, {"name": "LEVEL", "default": "low", "enum": ["low", "high"]}])
    errors = errors_of({"name": "first", "script": "true"}, typed("second", **{"with": given_}),
                       types=[kind], defaults={"image": "x"})
    assert any(e.startswith(f"{path}: ") and words in e for e in errors), errors
    if words != "NUL" and words != "at most":
        assert any('step "second" (type "scan", a StepType)' in e for e in errors), errors


@pytest.mark.parametrize("executor", ["job", "local"])
def test_a_param_wins_over_a_defaults_variable_of_its_name(executor, tmp_path):
    """Step over type over spec.defaults (T2): the value the step gave in `with` is the one the
    container sees, on both executors."""
    plan = compiled(typed("a", **{"with": {"TARGET": "mine"}}),
                    types=[step_type(params=[TARGET], script=f'printf %s "$TARGET" > {tmp_path / "seen"}')],
                    defaults={"image": "x", "env": [{"name": "TARGET", "value": "from-defaults"},
                                                     {"name": "OTHER", "value": "kept"}]})
    if executor == "job":
        env = {v["name"]: v["value"] for v in _job_env(plan, "a")}
        assert (env["TARGET"], env["OTHER"]) == ("mine", "kept")
    else:
        asyncio.run(LocalRun(plan, log_dir=tmp_path / "logs").run())
        assert (tmp_path / "seen").read_text() == "mine"


def test_an_env_variable_may_not_take_a_params_name():
    errors = errors_of(typed("a", env=[{"name": "TARGET", "value": "x"}], **{"with": {"TARGET": "t"}}),
                       types=[step_type(params=[TARGET])])
    assert any(e.startswith("spec.steps[0].env: ") and "'TARGET'" in e for e in errors), errors


def _job_env(plan: Plan, name: str) -> list[dict[str, Any]]:
    job = build_job(plan, plan.spec.step(name), namespace="ns", owner_uid="u", generation=1)
    return job["spec"]["template"]["spec"]["containers"][0]["env"]


def _expand_like_the_kubelet(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion, as the kubelet applies it (shared with the local runner)."""
    from stepflow.env_values import expand_references
    return expand_references(value, env)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_param_reaches_the_job_literally_and_first(value):
    plan = compiled(typed("a", env=[{"name": "SECRET_VAR", "value": "leaked"}],
                          **{"with": {"TARGET": value}}), types=[step_type(params=[TARGET])])
    env = _job_env(plan, "a")
    assert env[0]["name"] == "TARGET"
    assert _expand_like_the_kubelet(env[0]["value"], {"SECRET_VAR": "leaked", "HOME": "/root"}) == value


def test_hostile_params_reach_a_local_process_literally(tmp_path):
    """The same values through the local runner: the script reads "$NAME" and sees the bytes given."""
    kind = step_type(params=[{"name": f"P{i}"} for i in range(len(HOSTILE))],
                     script=f'for v in {" ".join(f"P{i}" for i in range(len(HOSTILE)))}; do '
                            f'eval "printf %s \\"\\${{$v}}\\"" > "{tmp_path}/$v"; done')
    plan = compiled(typed("a", env=[{"name": "SECRET_VAR", "value": "leaked"}],
                          **{"with": {f"P{i}": v for i, v in enumerate(HOSTILE)}}), types=[kind])
    run = LocalRun(plan, log_dir=tmp_path / "logs")
    asyncio.run(run.run())
    assert json.loads(json.dumps(run.status()))["phase"] == "Succeeded"
    assert [(tmp_path / f"P{i}").read_text() for i in range(len(HOSTILE))] == HOSTILE


def test_a_params_reference_in_command_and_env_is_expanded_by_kubernetes_own_rule():
    kind = step_type(script=None, command=["scan", "$(TARGET)"], params=[TARGET],
                     env=[{"name": "WHERE", "value": "at $(TARGET)"}])
    plan = compiled(typed("a", **{"with": {"TARGET": "repo"}}), types=[kind])
    env = {v["name"]: v.get("value") for v in _job_env(plan, "a")}
    job = build_job(plan, plan.spec.step("a"), namespace="ns", owner_uid="u", generation=1)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["scan", "$(TARGET)"]
    assert next(iter(env)) == "TARGET" and env["WHERE"] == "at $(TARGET)"


# --- T4: a missing type --------------------------------------------------------------------------


def test_an_unknown_type_on_a_step_with_something_to_run_is_a_label():
    plan = compiled(typed("a", script="make"), types=[], defaults={"image": "x"})
    assert plan.spec.step("a").type == "scan" and plan.spec.step("a").script == "make"


@pytest.mark.parametrize("step", [typed("a"), typed("a", script="make", **{"with": {"A": "b"}})])
def test_a_step_that_needs_a_missing_type_names_it_once(step):
    errors = errors_of(step, types=[], defaults={"image": "x"})
    assert len(errors) == 1 and errors[0].startswith("spec.steps[0].type: ")
    assert 'step type "scan"' in errors[0] and "--types" in errors[0]


def test_resolution_lists_the_missing_types_with_the_steps_that_need_them():
    doc = workflow(typed("a"), typed("b", type_name="deploy"), typed("c"))
    assert dict(resolve(doc, Catalog()).missing) == {
        "scan": ("spec.steps[0]", "spec.steps[2]"), "deploy": ("spec.steps[1]",)}


# --- T5: a run keeps what it resolved ------------------------------------------------------------


def test_what_a_run_kept_resolves_the_same_workflow_again():
    kind = step_type(params=[TARGET, {"name": "LEVEL", "default": "high"}], version="41")
    doc = workflow(typed("a", **{"with": {"TARGET": "repo"}}))
    first = resolve(doc, Catalog.of([kind]))
    status = json.loads(json.dumps({"stepTypes": first.kept()}))
    assert status["stepTypes"]["scan"]["resourceVersion"] == "41"
    again = resolve(doc, Catalog.kept(status))
    assert again.document == first.document and again.kept() == first.kept()


def test_a_kept_type_wins_over_a_changed_one_of_either_kind():
    """A run in progress looks its types up in what it kept, never in the live catalogue."""
    kept = Catalog.kept({"stepTypes": {"scan": step_type(kind="ClusterStepType", image="old:1").kept()}})
    assert kept.find("scan").spec["image"] == "old:1" and kept.find("scan").kind == "ClusterStepType"
    assert Catalog.kept({}) is None and Catalog.kept(None) is None


# --- the merge, over random steps and types (hypothesis) -----------------------------------------

NAMES = st.sampled_from(["A", "B", "C", "D", "TARGET_X", "HOME"])
ENV = st.lists(st.builds(lambda n, v: {"name": n, "value": v}, NAMES, st.text(max_size=8)),
               unique_by=lambda v: v["name"], max_size=4)
HOW = st.fixed_dictionaries({}, optional={
    "image": st.sampled_from(["a:1", "b:2"]), "env": ENV, "timeoutSeconds": st.integers(1, 100),
    "retries": st.integers(0, 3), "serviceAccountName": st.sampled_from(["x", "y"]),
    "run": st.sampled_from([{"script": "true"}, {"command": ["c"]}, {"command": ["c"], "args": ["a"]},
                            {"args": ["b"]}]),
})


def _flat(how: dict[str, Any]) -> dict[str, Any]:
    how = dict(how)
    return {**{k: v for k, v in how.items() if k != "run"}, **how.get("run", {})}


@settings(max_examples=200, deadline=None)
@given(own=HOW, of_type=HOW)
def test_merge_properties(own, of_type):
    """The step's own fields always win, env names stay unique, and resolution is deterministic."""
    own, of_type = _flat(own), _flat(of_type)
    if "command" not in of_type:
        of_type.pop("args", None)  # a type's args need its command
    kind = step_type(**{"script": None, **of_type}) if "command" in of_type else step_type(**of_type)
    doc = workflow({"name": "s", "type": "scan", **own})
    first, second = resolve(doc, Catalog.of([kind])), resolve(doc, Catalog.of([kind]))
    assert first.document == second.document and not first.errors
    merged = first.document["spec"]["steps"][0]
    for key, value in own.items():
        if key != "env":
            assert merged[key] == value
    names = [v["name"] for v in merged.get("env", [])]
    assert len(names) == len(set(names))
    for var in own.get("env", []):
        assert var in merged["env"]
    if "command" in own or "script" in own:
        assert {k: merged.get(k) for k in ("command", "args", "script")} == {
            k: own.get(k) for k in ("command", "args", "script")}
    elif "args" in own:  # the type's command (or script) stays
        kept = ("command", "script")
        assert [merged.get(k) for k in kept] == [kind.spec.get(k) for k in kept]
        assert merged["args"] == own["args"]


def test_types_too_large_to_keep_in_a_status_are_refused_before_a_run():
    """A run keeps its types in status.stepTypes (T5): ten 30 KB scripts would make a status
    that etcd refuses on every write; validate and the operator say so up front instead."""
    kinds = [step_type(f"big{i}", script="#" * 30_000 + f"\necho {i}", params=[]) for i in range(10)]
    plan = compiled(*(typed(f"s{i}", f"big{i}") for i in range(10)), types=kinds)
    errors = [str(e) for e in cluster_errors(plan)]
    assert len(errors) == 1 and errors[0].startswith("spec.steps: the step types these steps use take 29")
    assert cluster_errors(compiled(*(typed(f"s{i}", f"big{i}") for i in range(8)), types=kinds)) == []


# --- T3: a param never becomes shell code -------------------------------------------------------

@pytest.mark.parametrize("how, place", [
    ({"script": "echo hello $(TARGET)"}, "script"),
    ({"script": None, "command": ["sh", "-c", "echo $(TARGET)"]}, "command[2]"),
    ({"script": None, "command": ["/bin/bash", "-euc"], "args": ["deploy $(TARGET)", "x"]}, "args[0]"),
    ({"script": "echo $(WHERE)", "env": [{"name": "WHERE", "value": "to $(TARGET)"}]}, "script"),
    ({"script": None, "command": ["python3.11", "-c", "print('$(TARGET)')"]}, "command[2]"),
    ({"script": None, "command": ["node"], "args": ["--eval", "run('$(TARGET)')"]}, "args[1]"),
    ({"script": None, "command": ["/usr/bin/perl", "-w", "-e", "print '$(TARGET)'"]}, "command[3]"),
    ({"script": "echo price: $$$(TARGET)"}, "script"),
])
def test_a_param_pasted_into_shell_code_is_refused(how, place):
    """Kubernetes expands $(NAME) in the command before the shell (or python -c, node -e, ...)
    reads it: a value of "x; rm -rf /" would run. A script reads "$TARGET" instead."""
    errors = errors_of(typed("a", **{"with": {"TARGET": "x; touch pwned"}}),
                       types=[step_type(params=[TARGET], **how)])
    assert len(errors) == 1 and errors[0].startswith(f"spec.steps[0].{place}: "), errors
    assert 'step "a" (type "scan")' in errors[0] and "shell code" in errors[0] and '"$' in errors[0]


@pytest.mark.parametrize("how", [
    {"script": None, "command": ["deploy", "--to=$(TARGET)"]},  # no shell reads it
    {"script": None, "command": ["sh", "/scripts/deploy.sh", "$(TARGET)"]},  # $1 of a script file
    {"script": None, "command": ["sh", "-c", 'deploy "$1"', "sh", "$(TARGET)"]},  # after the script
    {"script": None, "command": ["python3", "-m", "deployer", "$(TARGET)"]},  # an argument of a module
    {"script": 'echo "$TARGET" costs $$(TARGET)'},  # a shell variable, and the text $(TARGET)
])
def test_a_param_may_reach_a_command_no_shell_reads_as_code(how):
    assert compiled(typed("a", **{"with": {"TARGET": "x; touch pwned"}}),
                    types=[step_type(params=[TARGET], **how)]).spec.step("a").params


def test_a_local_run_of_a_type_that_pastes_a_param_runs_nothing(tmp_path):
    doc = tmp_path / "wf.yaml"
    doc.write_text("\n---\n".join(json.dumps(d) for d in (
        type_doc(params=[TARGET], script=f"echo $(TARGET) > {tmp_path / 'out'}"),
        workflow(typed("a", **{"with": {"TARGET": f"x; touch {tmp_path / 'pwned'}"}}),
                 defaults={"image": "x"}))))
    ran = subprocess.run([sys.executable, "-m", "stepflow", "run", str(doc)], capture_output=True, text=True)
    assert ran.returncode == 1 and "shell code" in ran.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("entry", [
    {"spec": ["x"]}, {"spec": {"params": "zz"}}, {"spec": {"env": 3, "image": 5, "script": ["x"]}},
    {"spec": {"params": [{"name": "A", "enum": 3, "default": 4}], "script": "true"}}, "x", None,
])
def test_a_kept_type_of_the_wrong_shape_is_missing_never_a_crash(entry):
    """Only the operator writes status.stepTypes, but whoever may patch a status could write
    anything there: the reconcile must answer InvalidSpec, not raise on every attempt."""
    with pytest.raises(SpecError) as refused:
        compile_workflow(workflow(typed("a", **{"with": {"A": "x"}}), defaults={"image": "i"}),
                         Catalog.kept({"stepTypes": {"scan": entry}}))
    assert 'step type "scan"' in str(refused.value.errors[0])
