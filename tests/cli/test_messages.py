"""Messages (issue 28, item 12): in the user's words, never Python's; every problem of a file in
one pass where the plan allows; the document named in a file of several; text a step wrote shown
without obeying its escape sequences; and usage errors that exit 2 with the usage."""

from __future__ import annotations

import copy
import re

import pytest

from builders import step, workflow, write_workflow
from stepflow.cli import main
from stepflow.cluster_refusals import cluster_errors
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError

# What Python says and a user should never read: reprs of None, dicts and lists, type names,
# argparse's type functions, float()'s complaint, exception names.
PYTHON = re.compile(r"\bNone\b|NoneType|\{'|\['|could not convert|_positive_int|Traceback|<class|"
                    r"object at 0x|\b(dict|str|int|float)\b|KeyError|TypeError|ValueError")
HOSTILE = [None, [], {}, 5, -1, True, 1.5, "x", "", {"a": 1}, [None], ["x"], [{"a": 1}]]


def full_document() -> dict:
    doc = workflow(
        step("a", outputs=["o"], env=[{"name": "E", "value": "1"}],
             resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
             tolerations=[{"key": "k", "operator": "Exists"}], securityContext={"runAsUser": 1},
             podMetadata={"labels": {"a": "b"}}),
        step("b", depends_on=["a"], when="true",
             env=[{"name": "V", "valueFrom": {"stepOutput": {"step": "a", "output": "o"}}}]),
        defaults={"image": "alpine"}, maxResources={"cpu": "4"})
    doc["spec"]["finally"] = [step("f")]
    return doc


def places(node, prefix=()):
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from places(child, (*prefix, key))


def messages(doc) -> list[str]:
    try:
        return [e.message for e in cluster_errors(compile_workflow(doc))]
    except SpecError as exc:
        return [e.message for e in exc.errors]


def test_no_value_anywhere_makes_an_error_speak_python_or_crash():
    """Every field of a full document, replaced in turn by each hostile value: each error is in
    YAML's words (null, a list, an object), and none is a traceback."""
    base = full_document()
    for where in [p for p in places(base) if p]:
        for value in HOSTILE:
            doc = copy.deepcopy(base)
            node = doc
            for key in where[:-1]:
                node = node[key]
            node[where[-1]] = value
            for message in messages(doc):
                assert not PYTHON.search(message), (where, value, message)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(apiVersion=None), "apiVersion: must be 'stepflow.dev/v1alpha1', got null"),
    (lambda d: d.update(kind={"a": 1}), "kind: must be 'Workflow', got an object"),
    (lambda d: d["metadata"].update(name=["x"]), "metadata.name: must be a string, got a list of 1 item"),
    (lambda d: d["spec"]["maxResources"].update(cpu=None),
     'spec.maxResources.cpu: must be a quantity such as "500m" or "2Gi", got null'),
])
def test_values_are_named_in_yaml_words(change, expected):
    doc = full_document()
    change(doc)
    with pytest.raises(SpecError) as caught:
        compile_workflow(doc)
    assert expected in [str(e) for e in caught.value.errors]


# --- every problem in one pass ------------------------------------------------------------------

def errors(doc) -> list[str]:
    with pytest.raises(SpecError) as caught:
        compile_workflow(doc)
    return [str(e) for e in caught.value.errors]


def test_a_duplicate_name_does_not_hide_the_dependency_errors():
    found = errors(workflow(step("a"), step("b", depends_on=["nope"]), step("a", depends_on=["ghost"])))
    assert found == ['spec.steps[2].name: duplicate step name "a" (also spec.steps[0])',
                     'spec.steps[1].dependsOn[0]: step "b" depends on unknown step "nope"',
                     'spec.steps[2].dependsOn[0]: step "a" depends on unknown step "ghost"']


def test_a_cycle_is_reported_with_the_reference_errors_not_after_they_are_fixed():
    found = errors(workflow(step("a", depends_on=["c"]), step("b", depends_on=["a", "nope"]),
                            step("c", depends_on=["b"]), step("d", depends_on=["d"])))
    assert found == [
        'spec.steps[1].dependsOn[1]: step "b" depends on unknown step "nope"',
        'spec.steps[3].dependsOn[0]: step "d" depends on itself',
        'spec.steps[0].dependsOn: dependency cycle: "a" waits for "c" waits for "b" waits for "a"']


def test_a_step_that_is_not_an_object_gets_one_error_and_no_crash():
    # It used to crash the data-flow check (KeyError) when another step depended on a name.
    found = errors(workflow(None, step("b", depends_on=["a"])))
    assert found == ["spec.steps[0]: must be an object, got null",
                     'spec.steps[1].dependsOn[0]: step "b" depends on unknown step "a"']


# --- files of several documents, and files of another tool ----------------------------------------

TWO_AND_ONE_BROKEN = """\
apiVersion: stepflow.dev/v1alpha1
kind: Workflow
metadata: {name: good}
spec: {steps: [{name: a, script: "echo good"}]}
---
apiVersion: stepflow.dev/v1alpha1
kind: Workflow
metadata: {name: bad}
spec: {steps: [{name: a, script: "true", dependsOn: [nope]}]}
"""


def test_validate_names_the_document_of_every_error_and_reports_them_all(capsys, tmp_path):
    file = tmp_path / "two.yaml"
    file.write_text(TWO_AND_ONE_BROKEN)
    code = main(["validate", str(file)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    # The first document's image error is found although the second does not compile.
    assert err == [
        f'{file}: [document 2] spec.steps[0].dependsOn[0]: step "a" depends on unknown step "nope"',
        f'{file}: [document 1] spec.steps[0].image: step "a" has no image; set it or spec.defaults.image']


def test_run_name_runs_its_workflow_whatever_a_sibling_holds(capsys, tmp_path):
    file = tmp_path / "two.yaml"
    file.write_text(TWO_AND_ONE_BROKEN)
    code = main(["run", str(file), "--name", "good", "--logs", str(tmp_path / "logs")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "logs" / "a.log").read_text().strip() == "good"
    code = main(["run", str(file), "--name", "bad", "--logs", str(tmp_path / "logs")])
    assert code == 1 and 'unknown step "nope"' in capsys.readouterr().err
    code = main(["run", str(file), "--name", "other"])
    assert code == 1 and '(it holds: "good", "bad")' in capsys.readouterr().err


def test_an_innominatus_file_gets_one_error_that_says_how_to_nest_it(capsys, tmp_path):
    file = tmp_path / "innominatus.yaml"
    file.write_text("workflows:\n  deploy:\n    steps:\n      - {name: provision, type: terraform}\n")
    code = main(["validate", str(file)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and len(err) == 1
    assert "looks like an innominatus workflow file" in err[0] and "workflows (deploy)" in err[0]
    assert "kind: Workflow" in err[0] and "spec.steps" in err[0]


# --- what a step wrote, on a terminal -------------------------------------------------------------

def test_escape_sequences_in_outputs_and_messages_are_shown_not_obeyed(capsys, tmp_path):
    """An output (a PR title, say) holding a terminal title sequence and a screen clear, and a
    message quoting the file's text with one: the summary table and the progress lines show
    their escapes."""
    script = "printf 'title=\\033]0;pwned\\007\\033[2J\\n' >> \"$STEPFLOW_OUTPUTS\""
    file = write_workflow(tmp_path / "wf.yaml", workflow(
        step("a", outputs=["title"], script=script),
        step("b", when="steps.a.outputs.title == 'x\x1b[2J'"), step("c", script="exit 3")))
    code = main(["run", str(file), "--logs", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert code == 1
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out  # the output, as its escapes
    assert "'x\\x1b[2J'" in out  # the condition's message


# --- usage errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "FILE", "--max-concurrency", "abc"],
     "--max-concurrency: expected a whole number >= 1, got 'abc'"),
    (["run", "FILE", "--pool", "p=1", "--pool", "p=3"], "--pool p=3: p was given already (p=1)"),
    (["ui", "--port", "x"], "--port: expected a whole number >= 0, got 'x'"),
])
def test_usage_errors_exit_2_with_the_usage_and_the_problem_in_plain_words(capsys, tmp_path, argv, expected):
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a")))
    with pytest.raises(SystemExit) as caught:
        main([str(file) if a == "FILE" else a for a in argv])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and "usage:" in err and expected in err


def test_a_malformed_duration_is_named_without_python(capsys, tmp_path):
    file = write_workflow(tmp_path / "wf.yaml", workflow(step("a")))
    assert main(["plan", str(file), "--durations", "a=x"]) == 1
    assert capsys.readouterr().err.strip() == f"{file}: --durations: a: expected a number of seconds, got 'x'"


def test_an_unknown_operator_option_is_a_usage_error_not_a_traceback(capsys):
    assert main(["operator", "--bogus-option"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No such option '--bogus-option'" in err
    assert err.startswith("stepflow operator: error:")


def test_every_option_of_ui_and_list_has_help(capsys):
    for command in ("ui", "list"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert re.search(r"-A, --all-namespaces\s+every namespace", text), text
