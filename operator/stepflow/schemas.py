"""The schemas of whole objects, assembled from the fields of :mod:`stepflow.fields`: the
Workflow (its spec, and the status the operator writes) and the two step type kinds (T1).
:mod:`stepflow.crd` writes deploy/crds/ from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stepflow.fields import (
    MAX_WORKFLOW_NAME,
    SPEC_RULES,
    STEP,
    STEP_TYPE_RULES,
    STEP_TYPE_SPEC,
    Field,
    fixed_during_a_run,
    object_schema,
    spec_fields,
)
from stepflow.openapi import Schema, array, boolean, integer, obj, rule, string


def as_recorded(schema: Any) -> Any:
    """A copy without CEL rules and defaults: for status, which only the operator writes, from
    checked input (and whose unbounded maps would blow the API server's cost estimate of a rule)."""
    if not isinstance(schema, dict):
        return schema
    node = {k: v for k, v in schema.items() if k not in ("x-kubernetes-validations", "default")}
    for key in ("items", "additionalProperties"):
        if key in node:
            node[key] = as_recorded(node[key])
    if "properties" in node:  # names of fields, such as a param's "default", stay
        node["properties"] = {name: as_recorded(child) for name, child in node["properties"].items()}
    return node


def _timestamp(what: str) -> Schema:
    return string(f"When {what} (RFC 3339, milliseconds).", date_time=True)


STEP_STATUS = obj("State of one step.", {
    "group": integer("Index of the step's group in status.groups.", minimum=0),
    "index": integer("Position of the step in spec.steps, then spec.finally (counted on).", minimum=0),
    "type": string("The step's type, copied from the spec."),
    "phase": string("Phase of the step.",
                    enum=["Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled"]),
    "reason": string(
        "Machine-readable reason, e.g. WaitingForSlot, WaitingForPrerequisites, PrerequisiteFailed, "
        "Timeout, ConditionFalse, ConditionError, OutputUnavailable, MissingOutput, OutputsTooLarge, "
        "InvalidOutput, WaitingForMainSteps, MatrixInvalid, MatrixEmpty, CopiesFailed."),
    "message": string("Human-readable detail; for a skipped step it names the upstream step."),
    "jobName": string("Name of the step's Job in this run."),
    "startedAt": _timestamp("the step started"),
    "finishedAt": _timestamp("the step finished"),
    "attempts": integer("How many pods the step has run (1 + retries used).", minimum=0),
    "exitCode": integer("Exit code of the container of a failed step."),
    "terminationMessage": string("Termination message of the container of a failed step."),
    "continuedOnError": boolean("The step failed, but continueOnError let the workflow carry on."),
    "outputs": obj("The declared outputs of a succeeded step (O2).", max_properties=32,
                   values=string("An output's value.")),
    "finally": boolean("The step is one of spec.finally (X4)."),
    "matrixOf": string("A copy of a matrix step names that step (M2); its name is <step>-<i>.",
                       max_length=63),
    "matrix": obj("A copy's values, by matrix name (M2).", values=string("One value.")),
    "copies": integer("A matrix step's entry, beside its copies' (M2): how many copies it has; its "
                      "phase is the whole's (M3).", minimum=0),
})

CONDITION = obj("One condition.", {
    "type": string("Type of the condition, e.g. Ready, Reconciling, Stalled, Complete, Failed.",
                   max_length=316),
    "status": string("Status of the condition.", enum=["True", "False", "Unknown"]),
    "reason": string("Machine-readable reason for the last transition.", max_length=1024),
    "message": string("Human-readable detail of the last transition.", max_length=32768),
    "lastTransitionTime": string("When the condition last changed status.", date_time=True),
    "observedGeneration": integer("The metadata.generation the condition was set for.", bits=64, minimum=0),
}, required=["type", "status"])

STATUS = obj("Observed state of the current or last run, written by the operator.", {
    "phase": string("Phase of the run: Pending, Running, Succeeded, Failed, or Suspended while "
                    "spec.suspend is set.", enum=["Pending", "Running", "Succeeded", "Failed", "Suspended"]),
    "reason": string("Machine-readable reason for the phase, e.g. StepsFailed, Timeout, InvalidSpec."),
    "message": string("Human-readable summary; names every failed step."),
    "trimmed": string("Set when the status would have outgrown its size budget (512 KiB): says what was "
                      "cut, such as termination messages shortened to their last characters."),
    "progress": string("Finished steps out of all steps, e.g. 3/7."),
    "startedAt": _timestamp("the run started"),
    "finishedAt": _timestamp("the run finished"),
    "duration": string("Run time so far or in total, human-readable, e.g. 850ms, 42s, 1m23s."),
    "observedGeneration": integer("The newest metadata.generation the operator has seen.",
                                  bits=64, minimum=0),
    "runGeneration": integer("The metadata.generation whose spec the current or last run executes.",
                             bits=64, minimum=0),
    "specHash": string("Fingerprint of the spec that defines the current run (everything but suspend "
                       "and maxConcurrency). The operator starts a new run when it changes.", max_length=64),
    "errors": array("Validation errors of an invalid spec (reason InvalidSpec), one per problem.",
                    string("One validation error, with the field path.")),
    "groups": array("The plan; groups run one after another, each a list of step names.",
                    array("One group; its steps run concurrently.", string("A step name."))),
    "steps": obj("State of every step, keyed by step name.", values=STEP_STATUS),
    "stepTypes": obj(
        "The step types this run resolved when it started, keyed by name (T5): the run keeps using "
        "them whatever happens to the StepType or ClusterStepType meanwhile.", values=obj(
            "One step type as the run resolved it.", {
                "kind": string("StepType or ClusterStepType.", enum=["StepType", "ClusterStepType"]),
                "name": string("The type's name."),
                "resourceVersion": string("The type's resourceVersion when the run started."),
                "spec": as_recorded(object_schema("The type's spec as the run uses it.", STEP_TYPE_SPEC)),
            })),
    "conditions": array("kstatus conditions: Ready (succeeded), Reconciling (running), Stalled (failed), "
                        "plus Job-style Complete and Failed.", CONDITION, list_type="map", map_keys=["type"]),
})


def workflow_fields(steps: Iterable[Field] = STEP) -> tuple[Field, ...]:
    """The top-level fields of a Workflow object."""
    return (
        Field("apiVersion", string("APIVersion defines the versioned schema of this representation of "
                                   "an object (stepflow.dev/v1alpha1).")),
        Field("kind", string("Kind is the type of this object (Workflow).")),
        # A real API server refuses any schema of metadata but its type (name and generateName aside).
        Field("metadata", {"type": "object"}),
        Field("spec", object_schema("The desired run. A Workflow runs once per spec generation.",
                                    spec_fields(steps), rules=SPEC_RULES), required=True),
        Field("status", STATUS),
    )


TOP = workflow_fields()


def workflow_schema(steps: Iterable[Field] = STEP) -> Schema:
    """The Workflow CRD's openAPIV3Schema, built around the given step fields."""
    steps = tuple(steps)
    return object_schema(
        "A Workflow is an ordered list of steps that stepflow runs as Kubernetes Jobs. Steps marked "
        "parallel, or sharing a parallelGroup number, run concurrently; the others run one after "
        "another. At most spec.maxConcurrency steps run at once.", workflow_fields(steps), rules=[
            rule(f"self.metadata.name.size() <= {MAX_WORKFLOW_NAME}",
                 f"metadata.name may have at most {MAX_WORKFLOW_NAME} characters: it becomes the "
                 "stepflow.dev/workflow label value and part of every Job name", reason="FieldValueInvalid"),
            fixed_during_a_run(spec_fields(steps)),
        ])


def step_type_schema(kind: str) -> Schema:
    """The openAPIV3Schema of StepType or ClusterStepType: the same spec, the step's own fields."""
    scope = "the Workflows of its namespace" if kind == "StepType" else (
        "the Workflows of every namespace (a StepType of the same name in a Workflow's namespace wins)")
    return obj(
        f"A {kind} says once how a kind of step runs (T1), for {scope}: a step names it with `type` "
        "and gives its params with `with`. A run keeps the version it started with.", {
            "apiVersion": string("APIVersion of this object, stepflow.dev/v1alpha1."),
            "kind": string(f"Kind of this object, {kind}."),
            "metadata": {"type": "object"},
            "spec": object_schema("How a step of this type runs: image, command or script, env, resources, "
                         "security settings. Never when it runs: name, parallel, parallelGroup, "
                         "dependsOn, when, pool, continueOnError, matrix, type and with belong to the "
                         "step.", STEP_TYPE_SPEC, rules=STEP_TYPE_RULES),
        }, required=["spec"])
