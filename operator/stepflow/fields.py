"""The Workflow's fields, declared once: the CRD's schema is generated from here, and
:mod:`stepflow.spec` takes its lists of known fields from here.

Each field carries its type, bounds, the description ``kubectl explain`` shows, and the CEL
rules the API server checks on every write. The fields of a step (:data:`STEP`) serve
``spec.steps`` and ``spec.finally`` alike; those that are pod settings serve ``spec.defaults``
too, so a new step field is one entry here and appears in all three places at once.
:mod:`stepflow.schemas` assembles whole objects from them, and :mod:`stepflow.crd` writes
deploy/crds/ from those (``make crds``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stepflow import pod_fields
from stepflow.openapi import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    UNSIGNED_QUANTITY,
    Schema,
    array,
    boolean,
    integer,
    number,
    obj,
    quantity,
    rule,
    string,
)

OUTPUT_NAME = r"[A-Za-z_][A-Za-z0-9_]*"  # O1, unanchored
FAILURE_POLICIES = ("StopAfterGroup", "FailFast", "Continue")
DEFAULT_MAX_CONCURRENCY = 5
MAX_RETRIES = 10
MAX_PARALLEL_GROUP = 1_000_000
MAX_WORKFLOW_NAME = 63  # a label value's limit: the name labels every Job (DESIGN.md, Names)
MAX_OUTPUT_NAME = 63
MAX_OUTPUT_DEFAULT = 4000  # as much as all of a step's outputs (O2)
MAX_PARAMS = 64
MAX_PARAM_VALUE = 32_768
MAX_MATRIX_NAMES = 16
# What a step type may never say (T1): when, and with what, a step runs is the workflow's business.
WHEN_FIELDS = ("name", "parallel", "parallelGroup", "dependsOn", "when", "pool", "continueOnError",
               "matrix", "type", "with")
CHANGEABLE_MID_RUN = ("maxConcurrency", "suspend")  # every other spec field is fixed during a run
IN_PROGRESS = ("Pending", "Running", "Suspended")  # the phases of a run that is not over


@dataclass(frozen=True)
class Field:
    """One field of an object: its name and schema, and where else it appears."""

    name: str
    schema: Schema
    required: bool = False
    # A step's pod setting: spec.defaults declares it too, and every step inherits it from there.
    pod_setting: bool = False
    # What differs under spec.defaults (its description, say), replacing the step's keys.
    in_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def defaults_schema(self) -> Schema:
        return {**self.schema, **self.in_defaults}


def names(fields: Iterable[Field]) -> tuple[str, ...]:
    return tuple(f.name for f in fields)


def object_schema(description: str, fields: Iterable[Field], **keywords: Any) -> Schema:
    fields = tuple(fields)
    return obj(description, {f.name: f.schema for f in fields},
               required=[f.name for f in fields if f.required], **keywords)


STEP_OUTPUT = obj(
    "An output of a prerequisite step (O3), resolved when this step starts and passed as a plain "
    "value, never substituted into command, args or script.", {
        "step": string("The step that produces the output; a prerequisite of this one.",
                       max_length=63, pattern=DNS1123_LABEL),
        "output": string("One of that step's declared outputs.", max_length=MAX_OUTPUT_NAME,
                         pattern=OUTPUT_NAME),
        "default": string("The value when the step did not succeed (skipped, failed with "
                          "continueOnError, or a finally step reading a step that failed). Without "
                          "it, this step is Skipped, reason OutputUnavailable.",
                          max_length=MAX_OUTPUT_DEFAULT),
    }, required=["step", "output"])

# A list or an object: no OpenAPI type says "either", so the node keeps what it is given. The API
# server cannot put a CEL rule on such a node (it has no CEL type; found on the real tier), so
# stepflow checks the shape, and the operator reports a wrong one (InvalidSpec) with its path.
MATRIX_VALUES = {
    "x-kubernetes-preserve-unknown-fields": True,
    "description": "A list of 1 to 256 strings, or {fromOutput: {step: S, output: O}}."}

STEP: tuple[Field, ...] = (
    Field("name", string(
        "Unique name of the step, a DNS-1123 label (lower case letters, digits and '-'). Shown in "
        "status, events, Job labels and metrics.", min_length=1, max_length=63, pattern=DNS1123_LABEL),
        required=True),
    Field("type", string(
        "The step's kind, shown in status, events and metrics. If a StepType of the Workflow's "
        "namespace, or else a ClusterStepType, has this name, the step runs as the type says (T2): "
        "the step's own fields win over the type's. A step that sets nothing to run waits, reason "
        "StepTypeNotFound, until the type exists.", min_length=1, max_length=63)),
    Field("with", obj(
        "The step type's params (T3), as strings. Each reaches the container as an environment "
        "variable of its name, declared before the other variables, and arrives literally: a $ in a "
        "value is never expanded.", max_properties=MAX_PARAMS,
        values=string("A param's value.", max_length=MAX_PARAM_VALUE))),
    Field("matrix", obj(
        "Fan-out (M1): the step runs once per combination of these lists' values (the cartesian "
        "product, the first name varying slowest), as copies named <step>-0, <step>-1, ... that run "
        "concurrently under every cap. Each name maps to a list of strings, or to "
        "{fromOutput: {step: S, output: O}}: a prerequisite's output holding a JSON array of strings, "
        "read when this step becomes ready. Each copy gets its values as environment variables named "
        "after the lists, literally, and STEPFLOW_MATRIX_INDEX. At most 256 copies.",
        max_properties=MAX_MATRIX_NAMES,
        values=MATRIX_VALUES)),
    Field("parallel", boolean("Run concurrently with the adjacent parallel steps. Ignored on a step "
                              "with a parallelGroup number.")),
    Field("parallelGroup", integer(
        "Group number; adjacent steps with the same number run together. Numbers must increase down "
        "the list (gaps are fine). 0 or absent means unset.", minimum=0, maximum=MAX_PARALLEL_GROUP)),
    Field("dependsOn", array(
        "Names of steps that must succeed before this one starts; replaces the group barrier for this "
        "step. An empty list means it may start at once.",
        string("Name of another step of this workflow.", max_length=63, pattern=DNS1123_LABEL),
        max_items=100, list_type="set")),
    Field("outputs", array(
        "Names of the outputs the step produces (O1). It writes them as name=value lines, or "
        "name<<DELIM ... DELIM blocks, to the file $STEPFLOW_OUTPUTS (the container's "
        "termination-message path); at most 4,000 bytes in all. A step that exits 0 without one of "
        "them fails with reason MissingOutput.",
        string("An output name.", min_length=1, max_length=MAX_OUTPUT_NAME, pattern=OUTPUT_NAME),
        max_items=32, list_type="set")),
    Field("pool", string(
        "A StepPool of the Workflow's namespace (R2): the step holds one of its slots while it runs, "
        "and waits as Pending, reason WaitingForPool, while every slot is held (PoolNotFound while the "
        "pool does not exist).", max_length=63, pattern=DNS1123_SUBDOMAIN)),
    Field("when", string(
        "CEL condition, evaluated once the step's prerequisites are over (W1). It sees "
        "steps['name'].phase, .exitCode and .outputs.NAME of its prerequisites, workflow.name, "
        "workflow.namespace, and in a finally step workflow.failed (the main steps ended Failed). False "
        "skips the step with reason ConditionFalse, "
        "which its dependents treat as success. The operator checks it at InvalidSpec time.",
        min_length=1, max_length=4096)),
    Field("image", string("Container image; defaults to spec.defaults.image.", min_length=1, max_length=1024),
          pod_setting=True, in_defaults={"description": "Container image for steps that set none."}),
    Field("command", array("Entrypoint of the container, as an exec array (no shell).",
                           string("One element of the command.", max_length=4096),
                           min_items=1, max_items=256)),
    Field("args", array("Arguments to command; only allowed together with command.",
                        string("One argument.", max_length=65536), max_items=256)),
    Field("script", string("Shell script, run with sh -c. Use instead of command and args.",
                           min_length=1, max_length=65536)),
    Field("workingDir", string("Working directory of the container.", max_length=4096)),
    Field("serviceAccountName", string(
        "Service account, in the Workflow's namespace, that this step's pod runs as; replaces "
        "spec.serviceAccountName for this step.", max_length=253, pattern=DNS1123_SUBDOMAIN)),
    Field("env", pod_fields.env("Environment variables of the step's container, added to (and "
                                "overriding) spec.defaults.env.", step_output=STEP_OUTPUT),
          pod_setting=True, in_defaults=pod_fields.env(  # each step reads its own prerequisites' outputs
              "Environment variables for every step's container; a step's own env entries win on a "
              "name clash.")),
    Field("resources", pod_fields.resources("Compute resources of the step's container (Kubernetes "
                                            "ResourceRequirements); replaces spec.defaults.resources.",
                                            where="resources"),
          pod_setting=True, in_defaults=pod_fields.resources(
              "Compute resources for every step's container (Kubernetes ResourceRequirements).",
              where="defaults.resources")),
    Field("timeoutSeconds", integer("Limit for this step, in seconds (the Job's activeDeadlineSeconds).",
                                    bits=64, minimum=1)),
    Field("retries", integer("How often a failed step is retried (the Job's backoffLimit).",
                             minimum=0, maximum=MAX_RETRIES, default=0)),
    Field("continueOnError", boolean("Record the step's failure, but let scheduling and the workflow's "
                                     "outcome treat it as a success.", default=False)),
    Field("estimatedSeconds", number("Expected run time, used only by `stepflow plan` to estimate the "
                                     "speed-up of parallel groups.", minimum=0)),
    Field("securityContext", pod_fields.SECURITY_CONTEXT, pod_setting=True),
    Field("podSecurityContext", pod_fields.POD_SECURITY_CONTEXT, pod_setting=True),
    Field("tolerations", pod_fields.TOLERATIONS, pod_setting=True),
    Field("nodeSelector", pod_fields.NODE_SELECTOR, pod_setting=True),
    Field("podMetadata", pod_fields.POD_METADATA, pod_setting=True),
)
POD_METADATA_FIELDS = tuple(pod_fields.POD_METADATA["properties"])


def _per_step(expression: str, message: str, field_path: str | None = None) -> Schema:
    """A rule on one step; its message names the step (cheap: one string per step)."""
    return rule(expression, message, message_expression=f"'step ' + self.name + ': {message}'",
                field_path=field_path)


# Checked on each step of spec.steps and of spec.finally.
STEP_RULES = (
    _per_step("!(has(self.command) && has(self.script))", "set command or script, not both"),
    _per_step("has(self.type) || has(self.command) || has(self.script)",
              "has nothing to run: set command or script, or a type that says how it runs"),
    _per_step("!has(self.args) || has(self.command)",
              "args is only allowed together with command (a script runs with sh -c)", ".args"),
    _per_step("!(has(self.parallel) && !self.parallel && has(self.parallelGroup) && self.parallelGroup > 0)",
              "parallel false conflicts with parallelGroup >= 1 (a numbered step runs with its group)",
              ".parallel"),
    _per_step("!has(self.dependsOn) || !(self.name in self.dependsOn)", "a step cannot depend on itself",
              ".dependsOn"),
)

# Checked on the whole of spec.steps and of spec.finally. Their messages are plain: the API server
# estimates any messageExpression over the list beyond its budget (see crd.HEADER).
STEP_LIST_RULES = (
    rule("self.filter(s, has(s.parallelGroup) && s.parallelGroup > 0) .map(s, s.parallelGroup).isSorted()",
         "parallelGroup numbers must increase down the steps list (gaps such as 1, 3, 7 are fine)",
         reason="FieldValueInvalid"),
    rule("[self.map(s, has(s.parallelGroup) ? s.parallelGroup : 0)].all(pgs, [pgs.filter(n, n > 0)]"
         ".all(nums, nums.size() * (pgs.size() + nums.size()) > 400000 || nums.all(n, pgs.lastIndexOf(n) "
         "- pgs.indexOf(n) == nums.lastIndexOf(n) - nums.indexOf(n))))",
         "steps that share a parallelGroup number must be adjacent, with no other step between them",
         reason="FieldValueInvalid"),
)


def step_list(description: str, steps: Iterable[Field], *, min_items: int | None = None,
              max_items: int) -> Schema:
    """spec.steps or spec.finally: the same step schema and rules, keyed by name."""
    item = object_schema("One step; it runs as one Kubernetes Job.", steps, rules=STEP_RULES)
    return array(description, item, min_items=min_items, max_items=max_items, list_type="map",
                 map_keys=["name"], rules=STEP_LIST_RULES)


def spec_fields(steps: Iterable[Field] = STEP) -> tuple[Field, ...]:
    """The fields of spec, built around the given step fields."""
    steps = tuple(steps)
    defaults = obj("Values every step inherits unless it sets its own.",
                   {f.name: f.defaults_schema for f in steps if f.pod_setting})
    return (
        Field("maxConcurrency", integer(
            "How many steps of this workflow may run at once. Ready steps beyond the cap wait in "
            "document order. May be changed while a run is in progress.",
            minimum=1, maximum=1000, default=DEFAULT_MAX_CONCURRENCY)),
        Field("suspend", boolean("While true, no new step starts; running steps finish. May be changed "
                                 "while a run is in progress.", default=False)),
        Field("steps", step_list(
            "The steps, in document order. A sequential step is a group of its own; adjacent parallel "
            "steps form one group; adjacent steps with the same parallelGroup number form one group. "
            "Groups run one after another.", steps, min_items=1, max_items=1000), required=True),
        Field("failurePolicy", string(
            "What happens when a step fails. StopAfterGroup: running steps and the rest of the failed "
            "step's group finish, nothing else starts. FailFast: running steps are stopped (Cancelled), "
            "nothing else starts. Continue: every step that does not depend on a failed step still "
            "runs. The workflow ends Failed in every case.",
            enum=FAILURE_POLICIES, default=FAILURE_POLICIES[0])),
        Field("timeoutSeconds", integer("Limit for the whole run, in seconds. When it runs out the "
                                        "workflow behaves as FailFast, with reason Timeout.",
                                        bits=64, minimum=1)),
        Field("serviceAccountName", string(
            "Service account, in the Workflow's namespace, that every step's pod runs as. Defaults to "
            "the namespace's default service account.", max_length=253, pattern=DNS1123_SUBDOMAIN)),
        Field("runToken", string("Changing it starts a new run of an otherwise unchanged, finished "
                                 "workflow. `stepflow rerun` sets it.", max_length=128)),
        Field("defaults", defaults),
        Field("maxResources", obj(
            "At no moment do the running steps of this workflow request more than this, per resource "
            "(cpu, memory, nvidia.com/gpu, ...). A step's requests default to its limits; a step "
            "without either counts as zero. A ready step that does not fit waits as Pending, reason "
            "WaitingForResources. Fixed while a run is in progress.", max_properties=16,
            values=quantity("A resource quantity, e.g. 4 or 8Gi.", pattern=UNSIGNED_QUANTITY))),
        Field("queueName", string(
            "A Kueue LocalQueue of the Workflow's namespace (R3). Every Job is created suspended with "
            "the label kueue.x-k8s.io/queue-name; its step waits as Pending, reason "
            "WaitingForAdmission, until Kueue un-suspends the Job. Counts against the caps from the "
            "Job's creation. Fixed while a run is in progress.", max_length=63, pattern=DNS1123_SUBDOMAIN)),
        Field("finally", step_list(
            "Steps that run once every step of spec.steps is over, whatever the outcome (X1): cleanup, "
            "notifications, releasing a lock. Same fields as spec.steps; their dependsOn names finally "
            "steps only, their when and stepOutput may read any main step. Each runs unless a finally "
            "prerequisite failed. Not covered by spec.timeoutSeconds.", steps, max_items=50)),
    )


SPEC = spec_fields()
DEFAULTS = tuple(f for f in STEP if f.pod_setting)

SPEC_RULES = (
    rule("(has(self.defaults) && has(self.defaults.image)) || (self.steps.all(s, has(s.image) || "
         "has(s.type)) && (!has(self.finally) || self.finally.all(s, has(s.image) || has(s.type))))",
         "every step needs an image; set spec.defaults.image, an image on each step, or a type that "
         "sets one",
         reason="FieldValueRequired", field_path=".steps"),
    rule("!has(self.finally) || self.finally.all(f, !self.steps.exists(s, s.name == f.name))",
         # no reason FieldValueDuplicate: with it the API server drops the message and says
         # only "spec.finally: Duplicate value"
         "step names must be unique across spec.steps and spec.finally", field_path=".finally"),
)


def fixed_during_a_run(spec: Iterable[Field]) -> Schema:
    """The transition rule: while a run is in progress, every spec field but
    :data:`CHANGEABLE_MID_RUN` keeps its value. Written from the fields, so a new one is fixed too."""
    terms = []
    for f in spec:
        if f.name in CHANGEABLE_MID_RUN:
            continue
        new, old = f"self.spec.{f.name}", f"oldSelf.spec.{f.name}"
        same = f"{new} == {old}"
        if f.schema.get("x-kubernetes-list-type") == "map":
            # The API server compares map lists regardless of order, but the order of steps is the plan.
            key = f.schema["x-kubernetes-list-map-keys"][0]
            same = f"{same} && {new}.map(s, s.{key}) == {old}.map(s, s.{key})"
        if not f.required:
            same = f"has({new}) == has({old}) && (!has({new}) || {f'({same})' if ' && ' in same else same})"
        terms.append(same)
    phases = ", ".join(f"'{phase}'" for phase in IN_PROGRESS)
    # A workflow waiting for its step types (T4) has not started its run: it may be fixed.
    # A changed status means a write through the status subresource, which cannot change the spec
    # (the API server keeps the stored one), while a write of the object keeps the stored status:
    # so the spec is compared only on writes that may change it. Comparing the whole spec on
    # every status write cost the API server ~40% of such a write (benchmarks/status_write.py).
    return rule(f"!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in "
                f"[{phases}]) || (has(self.status) && self.status != oldSelf.status) || "
                f"(has(oldSelf.status.reason) && oldSelf.status.reason == "
                f"'StepTypeNotFound') || ({' && '.join(terms)})",
                "only spec.suspend and spec.maxConcurrency may change while a run is in progress; wait for "
                "it to finish or delete the workflow", reason="FieldValueForbidden", field_path=".spec")


# --- step types (T1) -----------------------------------------------------------------------------

PARAM = obj("One param of the type (T3). The step gives its value in `with`; the container sees it "
            "as an environment variable of the param's name.", {
                "name": string("The param's name, also the environment variable's.", min_length=1,
                               max_length=63, pattern=OUTPUT_NAME),
                "description": string("What the param means, shown by `stepflow types`.", max_length=1024),
                "default": string("The value when the step gives none; without it the param is required.",
                                  max_length=MAX_PARAM_VALUE),
                "enum": array("The values allowed, if only some are.",
                              string("An allowed value.", max_length=1024), min_items=1, max_items=64,
                              list_type="set"),
            }, required=["name"], rules=[
                rule("!has(self.default) || !has(self.enum) || self.default in self.enum",
                     "default must be one of enum", field_path=".default")])

# A type says how a step runs: every step field but those that say when (T1).
TYPE_FIELDS = tuple(f for f in STEP if f.name not in WHEN_FIELDS)

STEP_TYPE_SPEC = (
    Field("description", string("What a step of this type does, shown by `stepflow types`.",
                                max_length=4096)),
    Field("params", array("The params a step gives in `with` (T3).", PARAM, max_items=MAX_PARAMS,
                          list_type="map", map_keys=["name"])),
    *TYPE_FIELDS,
)

STEP_TYPE_RULES = (
    rule("!(has(self.command) && has(self.script))", "set command or script, not both"),
    rule("!has(self.args) || has(self.command)",
         "args is only allowed together with command (a script runs with sh -c)", field_path=".args"),
)
