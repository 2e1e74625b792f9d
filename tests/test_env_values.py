"""Kubernetes' $(VAR) expansion, as both executors and validation read it (O3, T3).

The expansion cases are Kubernetes' own (third_party/forked/golang/expansion/expand_test.go of
the pinned release); the properties check that O3's check refuses exactly the commands in which
the kubelet's expansion would paste a step's output, however many variables and `$` it goes
through.
"""

from __future__ import annotations

import asyncio
import copy
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import step, workflow
from scripted_api import KEY, setup
from stepflow.cli import main
from stepflow.env_values import carriers, container_env, expand_references, literal, references, resolve_env
from stepflow.local import LocalRun
from stepflow.operator.jobs import build_job
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError

CONTEXT = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}
KUBERNETES_CASES = [  # (input, expected), from Kubernetes' doExpansionTest
    ("$(VAR_A)", "A"), ("$(VAR_A)-$(VAR_A)", "A-A"), ("$(VAR_A)-1", "A-1"), ("___$(VAR_B)___", "___B___"),
    ("___$(VAR_C)", "___C"), ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"), ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"), ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"), ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"), ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"), ("$(VAR_REF)", "$(VAR_A)"),
    ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"), ("foo$(VAR_EMPTY)bar", "foobar"),
    ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"), ("f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("$?_boo_$!", "$?_boo_$!"), ("$VAR_A", "$VAR_A"), ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"), ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"), ("$$$$$$$(VAR_A)", "$$$A"), ("$VAR_A)", "$VAR_A)"),
    ("${VAR_A}", "${VAR_A}"), ("$(VAR_B)_______$(A", "B_______$(A"), ("$(VAR_C)_______$(", "C_______$("),
    ("$(VAR_A)foobarzab$", "Afoobarzab$"), ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
    ("--$($($($($--", "--$($($($($--"),
    ("$($($($($--foo$(", "$($($($($--foo$("), ("foo0--$($($($(", "foo0--$($($($("),
    ("$(foo$$var)", "$(foo$$var)"), ("\n", "\n"), ("$£FOO", "$£FOO"),
    ("prefix-$€-suffix", "prefix-$€-suffix"),
    ("$中文", "$中文"),
]


@pytest.mark.parametrize(("text", "expected"), KUBERNETES_CASES)
def test_expansion_follows_kubernetes_own_cases(text, expected):
    assert expand_references(text, CONTEXT) == expected


def test_env_values_see_only_the_variables_declared_before_them():
    env = [{"name": "FOO", "value": "bar"}, {"name": "ZOO", "value": "$(FOO)-1 $(BLU)"},
           {"name": "BLU", "value": "$(ZOO)-2"}]
    assert resolve_env(env) == {"FOO": "bar", "ZOO": "bar-1 $(BLU)", "BLU": "bar-1 $(BLU)-2"}


@given(st.text())
def test_a_literal_value_expands_to_itself_and_refers_to_nothing(value):
    assert expand_references(literal(value), {"A": "x", "": "y", value: "z"}) == value
    assert references(literal(value)) == []


# --- O3: an output never reaches a shell, however it travels --------------------------------------

NAMES = ("TITLE", "MSG", "ALT")
PIECES = st.sampled_from(["$", "$$", "(", ")", "$(", "x", " ", *NAMES, *(f"$({n})" for n in NAMES)])
SENTINEL = "<output>"


def reads(var: str, producer: str = "build", output: str = "title") -> dict:
    return {"name": var, "valueFrom": {"stepOutput": {"step": producer, "output": output}}}


def script_errors(doc: dict) -> list[str]:
    try:
        compile_workflow(doc)
    except SpecError as exc:
        return [str(e) for e in exc.errors if "paste a step's output" in str(e)]
    return []


@settings(max_examples=300, deadline=None)
@given(st.permutations(NAMES), st.lists(st.lists(PIECES, max_size=6).map("".join), min_size=3, max_size=3),
       st.lists(PIECES, max_size=8).map(lambda pieces: "echo " + "".join(pieces)))
def test_the_check_refuses_exactly_the_scripts_the_kubelet_would_paste_an_output_into(order, values, script):
    """TITLE reads an output; MSG and ALT hold any text, before or after it. The kubelet expands
    the env in order, then the script with the result: the check must refuse the script if and
    only if the output's text ends up in it."""
    env = [reads(name) if name == "TITLE" else {"name": name, "value": value}
           for name, value in zip(order, values, strict=True)]
    doc = workflow(step("build", outputs=["title"]), step("deploy", script=script, env=env))
    resolved = resolve_env(container_env({}, "/dev/termination-log", env, outputs={"TITLE": SENTINEL}))
    pasted = SENTINEL in expand_references(script, resolved)
    assert bool(script_errors(doc)) == pasted, (env, script)


def test_a_chain_names_every_variable_it_goes_through():
    env = [reads("TITLE"), {"name": "MSG", "value": "PR: $(TITLE)"}, {"name": "ALT", "value": "[$(MSG)]"}]
    assert carriers(env, ["TITLE"]) == {"TITLE": ["TITLE"], "MSG": ["TITLE", "MSG"],
                                        "ALT": ["TITLE", "MSG", "ALT"]}
    doc = workflow(step("build", outputs=["title"]), step("deploy", script="echo $(ALT)", env=env))
    assert script_errors(doc) == [
        'spec.steps[1].script: step "deploy" uses $(ALT), whose value holds the output read by $(TITLE) '
        '(TITLE -> MSG -> ALT), which would paste a step\'s output into the command; read it as "$ALT" in '
        "the shell instead"]


def test_a_variable_that_refers_to_an_output_declared_after_it_holds_only_its_name():
    env = [{"name": "MSG", "value": "PR: $(TITLE)"}, reads("TITLE")]
    doc = workflow(step("build", outputs=["title"]), step("deploy", script="echo $(MSG)", env=env))
    assert script_errors(doc) == []  # the kubelet leaves "$(TITLE)" as written in MSG


INJECTED = {
    "through-a-variable": ("echo $(MSG)", [reads("TITLE"), {"name": "MSG", "value": "PR: $(TITLE)"}]),
    "after-an-escaped-dollar": ("echo price: $$$(TITLE)", [reads("TITLE")]),
}


@pytest.mark.parametrize("case", sorted(INJECTED))
def test_a_local_run_refuses_an_injection_and_runs_nothing(tmp_path, capsys, monkeypatch, case):
    script, env = INJECTED[case]
    monkeypatch.chdir(tmp_path)
    doc = workflow(step("build", outputs=["title"],
                        script="echo 'title=hello; touch pwned' >> \"$STEPFLOW_OUTPUTS\""),
                   step("deploy", script=script, env=env))
    file = tmp_path / "wf.yaml"
    file.write_text(yaml.safe_dump(doc))
    code = main(["run", str(file), "--logs", str(tmp_path / "logs")])
    assert code == 1
    assert "spec.steps[1].script" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case", sorted(INJECTED))
def test_the_operator_refuses_an_injection_as_invalid_spec_with_no_job(case):
    script, env = INJECTED[case]
    reconciler, api, _ = setup([step("build", outputs=["title"]), step("deploy", script=script,
                                                                         env=copy.deepcopy(env))])
    reconciler.reconcile(KEY)
    status = api.workflow["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec")
    assert "spec.steps[1].script" in status["message"] and "$(TITLE)" in status["message"]
    assert api.created == []


# --- item 2: every value stepflow passes in arrives literally, on both executors -------------------

# What a container's env can carry (no NUL; text, so no lone surrogate) and an output can say (a CR
# at a line's end is dropped by the $STEPFLOW_OUTPUTS format, as by GitHub's): hostile pieces too.
ENV_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r"), max_size=20)
HOSTILE = st.sampled_from(["$(TOKEN)", "$$", "$(", ")", "$", "$(TITLE)", "`id`", "; touch x", "\n", "'"])
VALUES = st.lists(HOSTILE | ENV_TEXT, max_size=5).map("".join)
SEEN = ("TITLE", "NOTES", "QUOTED", "PARAM")
CONSUMER_ENV = [{"name": "TOKEN", "value": "s3cret"}, reads("TITLE", "build", "title"),
                reads("NOTES", "build", "notes"), {"name": "QUOTED", "value": "[$(TITLE)]"}]


def typed_plan(title_default: str, param: str):
    from stepflow.step_types import Catalog, StepType, read_step_type

    found, errors = read_step_type({"apiVersion": "stepflow.dev/v1alpha1", "kind": "StepType",
                                    "metadata": {"name": "show"},
                                    "spec": {"image": "x", "script": "true", "params": [{"name": "PARAM"}]}})
    assert not errors
    consumer = {"name": "deploy", "type": "show", "with": {"PARAM": param},
                "env": copy.deepcopy(CONSUMER_ENV),
                "script": "; ".join(f'printf %s "${name}" > "$OUT/{name}"' for name in SEEN)}
    consumer["env"].append({"name": "OUT", "value": title_default})
    doc = workflow(step("build", outputs=["title", "notes"], script='cat "$SOURCE" > "$STEPFLOW_OUTPUTS"',
                        env=[{"name": "SOURCE", "value": title_default + "/outputs"}]), consumer,
                   defaults={"image": "x"})
    return compile_workflow(doc, Catalog.of([StepType(found.kind, found.name, found.spec, "1")]))


def outputs_file(values: dict[str, str]) -> str:
    """The $STEPFLOW_OUTPUTS text that says ``values``: a block each, so any line may be in it."""
    return "".join(f"{name}<<END_OF_IT\n{value}\nEND_OF_IT\n" for name, value in values.items())


def expected(title: str, notes: str, param: str) -> dict[str, str]:
    return {"TITLE": title, "NOTES": notes, "QUOTED": f"[{title}]", "PARAM": param}


@settings(max_examples=25, deadline=None)
@given(VALUES.filter(lambda v: "END_OF_IT" not in v), VALUES.filter(lambda v: "END_OF_IT" not in v), VALUES)
def test_any_output_or_param_reaches_a_local_process_as_given(title, notes, param):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "outputs").write_text(outputs_file({"title": title, "notes": notes}))
        run = LocalRun(typed_plan(tmp, param), log_dir=out / "logs")
        asyncio.run(run.run())
        report = json.loads(json.dumps(run.status()))
        assert report["phase"] == "Succeeded", report["message"]
        assert report["steps"]["build"]["outputs"] == {"title": title, "notes": notes}
        seen = {name: (out / name).read_bytes().decode() for name in SEEN}
        assert seen == expected(title, notes, param)


@settings(max_examples=300, deadline=None)
@given(VALUES, VALUES, VALUES)
def test_any_output_or_param_reaches_the_job_as_given_once_the_kubelet_expands_it(title, notes, param):
    plan = typed_plan("/out", param)
    job = build_job(plan, plan.step_by_name["deploy"], namespace="ns", owner_uid="u", generation=1,
                    outputs={"TITLE": title, "NOTES": notes})
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    kubelet = resolve_env(env)  # each value expanded with those before it, as the kubelet does
    assert {name: kubelet[name] for name in SEEN} == expected(title, notes, param)
    assert kubelet["TOKEN"] == "s3cret" and [v["name"] for v in env][:2] == ["PARAM", "STEPFLOW_OUTPUTS"]


def test_an_output_that_names_a_secret_declared_before_it_stays_text_in_the_job():
    """The reported leak: a PR title `fix typo $(TOKEN)` became the Secret's value."""
    doc = workflow(step("build", outputs=["title"]), step("deploy", env=[
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}}, reads("TITLE")]),
        defaults={"image": "x"})
    plan = compile_workflow(doc)
    job = build_job(plan, plan.step_by_name["deploy"], namespace="ns", owner_uid="u", generation=1,
                    outputs={"TITLE": "fix typo $(TOKEN) for $$5"})
    env = {v["name"]: v for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TITLE"] == {"name": "TITLE", "value": "fix typo $$(TOKEN) for $$$$5"}
    assert expand_references(env["TITLE"]["value"], {"TOKEN": "s3cret"}) == "fix typo $(TOKEN) for $$5"
