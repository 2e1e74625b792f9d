"""Field-level validation: types, names, unknown fields, and every error reported at once."""

from __future__ import annotations

import pytest

from builders import step, workflow
from stepflow import crd
from stepflow.plan import compile_workflow
from stepflow.spec import (
    DEFAULT_MAX_CONCURRENCY,
    FieldError,
    SpecError,
    parse_workflow,
    read_workflow,
)


def errors_of(doc) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_workflow(doc)
    return [str(e) for e in info.value.errors]


def single_error(doc) -> str:
    errors = errors_of(doc)
    assert len(errors) == 1, errors
    return errors[0]


# --- a valid document ------------------------------------------------------------------------

def test_a_full_step_parses_with_every_field():
    doc = workflow(
        step("build", type="build", image="alpine:3.20", parallel=True, group=2,
             env=[{"name": "A", "value": "1"}], resources={"limits": {"cpu": "1"}},
             timeoutSeconds=60, retries=2, continueOnError=True, estimatedSeconds=1.5,
             workingDir="/tmp", script="echo hi"),
        maxConcurrency=3, failurePolicy="Continue", timeoutSeconds=600, suspend=True,
        serviceAccountName="deployer", defaults={"image": "alpine", "env": [{"name": "B", "value": "x"}]},
    )
    spec = parse_workflow(doc)
    s = spec.steps[0]
    assert (s.name, s.type, s.parallel, s.parallel_group) == ("build", "build", True, 2)
    assert (s.timeout_seconds, s.retries, s.continue_on_error, s.estimated_seconds) == (60, 2, True, 1.5)
    assert s.argv == ("sh", "-c", "echo hi")
    assert (spec.max_concurrency, spec.failure_policy, spec.timeout_seconds) == (3, "Continue", 600)
    assert spec.suspend is True and spec.service_account_name == "deployer"
    assert spec.defaults.env == ({"name": "B", "value": "x"},)


def test_defaults_when_fields_are_absent():
    spec = parse_workflow(workflow(step("a")))
    assert spec.max_concurrency == DEFAULT_MAX_CONCURRENCY == 5
    assert spec.failure_policy == "StopAfterGroup"
    assert spec.timeout_seconds is None and spec.suspend is False
    assert spec.steps[0].retries == 0 and spec.steps[0].continue_on_error is False


def test_command_and_args_form_the_argv():
    spec = parse_workflow(workflow({"name": "a", "command": ["echo"], "args": ["x", "y"]}))
    assert spec.steps[0].argv == ("echo", "x", "y")


# --- G6: names and the step list -------------------------------------------------------------

def test_empty_step_list():
    assert single_error(workflow()) == "spec.steps: must list at least one step"


def test_missing_step_list():
    doc = workflow(step("a"))
    del doc["spec"]["steps"]
    assert single_error(doc) == "spec.steps: must list at least one step"


def test_duplicate_names_point_at_both_entries():
    error = single_error(workflow(step("a"), step("b"), step("a")))
    assert error.startswith("spec.steps[2].name: ")
    assert '"a"' in error and "spec.steps[0]" in error


@pytest.mark.parametrize("name", ["Build", "build_api", "-lead", "trail-", "a.b", "x" * 64, "with space",
                                  "a\n"])
def test_name_must_be_a_dns1123_label(name):
    error = single_error(workflow(step(name)))
    assert error.startswith("spec.steps[0].name: ")
    assert f'"{name}"' in error and "DNS-1123" in error


@pytest.mark.parametrize("name", ["a", "build-api", "x" * 63, "0day", "a1-b2"])
def test_valid_dns1123_names(name):
    assert compile_workflow(workflow(step(name))).groups == ((name,),)


def test_missing_name():
    doc = workflow({"script": "true"})
    errors = errors_of(doc)
    assert "spec.steps[0].name: is required" in errors


# --- wrong types -----------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "expected"), [
    ("parallel", "yes", 'spec.steps[0].parallel: step "x": must be a boolean, got string \'yes\''),
    ("parallel", 1, "spec.steps[0].parallel: step \"x\": must be a boolean, got integer 1"),
    ("parallelGroup", "2", "spec.steps[0].parallelGroup: step \"x\": must be an integer, got string '2'"),
    ("parallelGroup", True, "spec.steps[0].parallelGroup: step \"x\": must be an integer, got boolean true"),
    ("parallelGroup", 1.5, "spec.steps[0].parallelGroup: step \"x\": must be an integer, got number 1.5"),
    ("retries", 11, "spec.steps[0].retries: step \"x\": must be <= 10, got 11"),
    ("retries", -1, "spec.steps[0].retries: step \"x\": must be >= 0, got -1"),
    ("timeoutSeconds", 0, "spec.steps[0].timeoutSeconds: step \"x\": must be >= 1, got 0"),
    ("continueOnError", "true",
     "spec.steps[0].continueOnError: step \"x\": must be a boolean, got string 'true'"),
    ("dependsOn", "a", "spec.steps[0].dependsOn: step \"x\": must be a list of strings, got string 'a'"),
    ("estimatedSeconds", -2,
     "spec.steps[0].estimatedSeconds: step \"x\": must be a finite number >= 0, got -2.0"),
    # These raised KeyError (a traceback) before: the type names had no entry for objects.
    ("resources", 5, "spec.steps[0].resources: step \"x\": must be an object, got integer 5"),
    ("tolerations", {"key": "gpu"},
     "spec.steps[0].tolerations: step \"x\": must be a list, got an object"),
])
def test_wrong_types_are_named_with_their_path_and_step(field, value, expected):
    assert single_error(workflow(step("x", **{field: value}))) == expected


def test_depends_on_items_must_be_strings():
    error = single_error(workflow(step("a"), step("b", depends_on=["a", 3])))
    assert error == 'spec.steps[1].dependsOn[1]: step "b": must be a string, got integer 3'


@pytest.mark.parametrize("name", ["A=B", "", "A\0B"])
def test_env_names_must_be_usable_as_variable_names(name):
    error = single_error(workflow(step("a", env=[{"name": name, "value": "x"}])))
    assert error.startswith("spec.steps[0].env[0].name: ") and "not a valid variable name" in error


def test_env_values_must_be_strings_with_a_hint():
    error = single_error(workflow(step("a", env=[{"name": "N", "value": 5}])))
    assert error.startswith('spec.steps[0].env[0].value: step "a": must be a string')
    assert "quote" in error


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("maxConcurrency", 0, "spec.maxConcurrency: must be >= 1, got 0"),
    ("maxConcurrency", "5", "spec.maxConcurrency: must be an integer"),
    ("failurePolicy", "StopAfterGrop",
     "spec.failurePolicy: must be one of StopAfterGroup, FailFast, Continue"),
    ("timeoutSeconds", -5, "spec.timeoutSeconds: must be >= 1"),
    ("suspend", "no", "spec.suspend: must be a boolean"),
    ("steps", {"a": 1}, "spec.steps: must be a list, got an object"),
])
def test_spec_level_wrong_values(field, value, fragment):
    doc = workflow(step("a"), **{field: value})
    if field == "steps":
        doc["spec"]["steps"] = value
    assert single_error(doc).startswith(fragment)


def test_step_that_is_not_an_object():
    errors = errors_of(workflow(step("a"), "just-a-string"))
    # One error for it: not also "name is required" and "nothing to run".
    assert errors == ["spec.steps[1]: must be an object, got string 'just-a-string'"]


# --- unknown fields --------------------------------------------------------------------------

def test_unknown_step_field_with_did_you_mean():
    error = single_error(workflow(step("a", dependOn=["b"])))
    assert error == 'spec.steps[0].dependOn: step "a": unknown field (did you mean "dependsOn"?)'


def test_unknown_spec_field_with_did_you_mean():
    error = single_error(workflow(step("a"), maxConcurency=3))
    assert error == 'spec.maxConcurency: unknown field (did you mean "maxConcurrency"?)'


def test_unknown_field_without_a_close_match():
    assert single_error(workflow(step("a", zzz=1))) == 'spec.steps[0].zzz: step "a": unknown field'


def test_unknown_top_level_field_path_has_no_leading_dot():
    """Found by this suite: the path read ".spce"; it must read like every other path."""
    doc = workflow(step("a"))
    doc["spce"] = {}
    assert single_error(doc) == 'spce: unknown field (did you mean "spec"?)'


def test_every_field_the_crd_declares_is_known_and_no_other():
    """The known fields come from the CRD's declaration (stepflow.fields): a field the API server
    accepts is never an "unknown field" here, and one it would prune is."""
    schema = crd.workflow_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    doc = workflow(step("a"), defaults={})
    doc["spec"]["finally"] = [{"name": "z", "script": "true"}]
    places = [(doc, schema), (doc["spec"], spec), (doc["spec"]["defaults"], spec["properties"]["defaults"]),
              (doc["spec"]["steps"][0], spec["properties"]["steps"]["items"]),
              (doc["spec"]["finally"][0], spec["properties"]["finally"]["items"])]
    for target, node in places:
        for name in [*node["properties"], "colour"]:
            target.setdefault(name, None)  # None: present, and as good as unset
    unknown = [e.path for e in read_workflow(doc)[1] if "unknown field" in e.message]
    assert unknown == ["colour", "spec.colour", "spec.steps[0].colour", "spec.finally[0].colour",
                       "spec.defaults.colour"]


# --- nothing to run --------------------------------------------------------------------------

def test_step_with_nothing_to_run():
    error = single_error(workflow({"name": "idle"}))
    assert error == ('spec.steps[0]: step "idle" has nothing to run: set command or script, or a type '
                     "that says how it runs")


def test_step_with_both_script_and_command():
    error = single_error(workflow(step("both", command=["echo"])))
    assert error.startswith("spec.steps[0]: ") and '"both"' in error and "script" in error


def test_step_with_an_empty_script():
    assert single_error(workflow(step("blank", script="  "))) == \
        'spec.steps[0].script: step "blank" has an empty script'


def test_args_without_command():
    error = single_error(workflow({"name": "x", "args": ["y"]}))
    assert '"x"' in error and "nothing to run" in error


# --- header ----------------------------------------------------------------------------------

def test_header_and_name_are_checked():
    doc = workflow(step("a"))
    doc["apiVersion"] = "stepflow.dev/v1"
    doc["kind"] = "Workflo"
    doc["metadata"] = {}
    errors = errors_of(doc)
    assert any(e.startswith("apiVersion: must be 'stepflow.dev/v1alpha1'") for e in errors)
    assert any(e.startswith("kind: must be 'Workflow'") for e in errors)
    assert "metadata.name: is required" in errors


@pytest.mark.parametrize("name", ["../escaped", "Release", "a_b", "trail-", "a.-b"])
def test_workflow_name_must_be_a_dns1123_subdomain(name):
    # It names Jobs and the local log directory; "../escaped" would write outside it.
    doc = workflow(step("a"))
    doc["metadata"]["name"] = name
    error = single_error(doc)
    assert error.startswith("metadata.name: ") and "DNS-1123 subdomain" in error


@pytest.mark.parametrize("length", [64, 100, 253])
def test_a_workflow_name_over_63_characters_is_refused_up_front(length):
    """It labels every Job (stepflow.dev/workflow), and label values stop at 63 characters: in a
    cluster every step would fail InvalidJob."""
    doc = workflow(step("a"))
    doc["metadata"]["name"] = "w" * length
    error = single_error(doc)
    assert error.startswith("metadata.name: ") and f"has {length} characters; at most 63" in error
    assert "label value" in error


def test_a_63_character_workflow_name_is_fine():
    doc = workflow(step("a"))
    doc["metadata"]["name"] = "a" * 30 + "." + "b" * 32
    assert read_workflow(doc)[1] == []


def test_document_that_is_not_an_object():
    spec, errors = read_workflow(["a", "list"])
    assert spec is None
    assert errors == [FieldError("(document)", "must be an object, got a list of 2 items")]


# --- every error at once ---------------------------------------------------------------------

def test_three_problems_give_three_errors():
    doc = workflow(
        step("Bad_Name"),                        # not DNS-1123
        step("b", parallel="yes"),               # wrong type
        step("c", group=2), step("d", group=1),  # decreasing numbers (plan layer)
    )
    errors = errors_of(doc)
    assert len(errors) == 3, errors
    assert sorted(e.split(":")[0] for e in errors) == [
        "spec.steps[0].name", "spec.steps[1].parallel", "spec.steps[3].parallelGroup"]


def test_field_and_cross_step_errors_are_reported_together():
    doc = workflow(step("a", retries=99), step("b", depends_on=["nope"]), step("c", group=-3))
    paths = sorted(e.split(": ")[0] for e in errors_of(doc))
    assert paths == ["spec.steps[0].retries", "spec.steps[1].dependsOn[0]", "spec.steps[2].parallelGroup"]


def test_spec_error_message_lists_every_error_one_per_line():
    with pytest.raises(SpecError) as info:
        compile_workflow(workflow(step("A"), step("B")))
    assert str(info.value).count("\n") == 1
    assert "spec.steps[0].name" in str(info.value) and "spec.steps[1].name" in str(info.value)


def test_error_messages_quote_only_an_excerpt_of_a_value():
    doc = workflow(step("a"))
    doc["spec"]["steps"][0]["parallel"] = ["x" * 1000] * 100
    error = single_error(doc)
    assert len(error) < 300 and "must be a boolean" in error


def test_pod_settings_are_checked_for_their_shape_and_node_selector_labels():
    doc = workflow(step("a", tolerations=["gpu"], securityContext="root", nodeSelector={"disk type": "ssd"}),
                   defaults={"podSecurityContext": [], "nodeSelector": {"stepflow.dev/pool": "x y"}})
    errors = errors_of(doc)
    assert 'spec.steps[0].tolerations[0]: step "a": must be an object, got string \'gpu\'' in errors
    assert any(e.startswith("spec.steps[0].securityContext: step \"a\": must be an object") for e in errors)
    bad_key = "spec.steps[0].nodeSelector['disk type']: step \"a\": is not a valid key"
    assert any(e.startswith(bad_key) for e in errors)
    assert any(e.startswith("spec.defaults.podSecurityContext: must be an object") for e in errors)
    # The stepflow.dev/ prefix is reserved for pod labels, not for the nodes a step selects.
    bad_value = "spec.defaults.nodeSelector['stepflow.dev/pool']: 'x y' is not a valid label value"
    assert any(e.startswith(bad_value) for e in errors)
