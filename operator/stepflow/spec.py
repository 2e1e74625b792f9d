"""Parse and validate a Workflow document into plain, immutable dataclasses.

Validation collects *every* problem before failing, because a user fixing a
manifest wants the whole list at once, each with the field path it concerns.
Rules that need the whole step list (G6 ordering, D2 references and cycles)
live in :mod:`stepflow.plan`, whose ``compile_workflow`` runs both layers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stepflow import fields, schemas

# Re-exported (`X as X`): the rest of the code base imports these from stepflow.spec.
from stepflow.documents import MAX_DOCUMENT_BYTES as MAX_DOCUMENT_BYTES
from stepflow.documents import MAX_EXPANDED_VALUES as MAX_EXPANDED_VALUES
from stepflow.documents import expanded_size as expanded_size
from stepflow.documents import iter_documents as iter_documents
from stepflow.documents import read_documents as read_documents
from stepflow.field_checks import LABEL_VALUE as LABEL_VALUE
from stepflow.field_checks import OUTPUT_NAME as OUTPUT_NAME
from stepflow.field_checks import RESERVED_LABEL_PREFIXES as RESERVED_LABEL_PREFIXES
from stepflow.field_checks import (
    Collector,
    described,
    excerpt,
    foreign_shape,
    max_resources,
    pool_name,
    queue_name,
    service_account,
)
from stepflow.field_checks import FieldError as FieldError
from stepflow.field_checks import SpecError as SpecError
from stepflow.field_checks import step_output_default as step_output_default
from stepflow.field_checks import step_output_source as step_output_source
from stepflow.fields import DEFAULT_MAX_CONCURRENCY as DEFAULT_MAX_CONCURRENCY
from stepflow.fields import FAILURE_POLICIES as FAILURE_POLICIES
from stepflow.fields import MAX_OUTPUT_NAME as MAX_OUTPUT_NAME
from stepflow.fields import MAX_PARALLEL_GROUP as MAX_PARALLEL_GROUP
from stepflow.fields import MAX_RETRIES as MAX_RETRIES
from stepflow.fields import MAX_WORKFLOW_NAME as MAX_WORKFLOW_NAME
from stepflow.matrix_spec import INDEX_VARIABLE, Axis, read_matrix
from stepflow.schema_check import METADATA_FIELDS, nested_errors

API_GROUP = "stepflow.dev"
API_VERSION = "v1alpha1"
KIND = "Workflow"
# Set by `stepflow rerun --failed` to the new spec.runToken: that run keeps the previous successes.
RERUN_FAILED_ANNOTATION = f"{API_GROUP}/rerun-failed"
MAX_STEPS = 10_000  # a local run's bound; the CRD allows 1,000 main steps
DNS1123_LABEL = re.compile(fields.DNS1123_LABEL)  # used with fullmatch
DNS1123_SUBDOMAIN = re.compile(fields.DNS1123_SUBDOMAIN)

# The known fields, for "unknown field" errors and their did-you-mean hints: the CRD's own.
TOP_FIELDS = fields.names(schemas.TOP)
SPEC_FIELDS = fields.names(fields.SPEC)
DEFAULTS_FIELDS = fields.names(fields.DEFAULTS)
STEP_FIELDS = fields.names(fields.STEP)
POD_METADATA_FIELDS = fields.POD_METADATA_FIELDS
POD_FIELDS = ("securityContext", "podSecurityContext", "tolerations", "nodeSelector")  # PodSettings'


@dataclass(frozen=True)
class PodMetadata:
    """Labels and annotations for a step's pod: service meshes, secret injectors, cost labels."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def merged(self, other: PodMetadata) -> PodMetadata:
        """These entries, overridden by ``other``'s on a key clash (a step's win over defaults)."""
        return PodMetadata({**self.labels, **other.labels}, {**self.annotations, **other.annotations})


@dataclass(frozen=True)
class PodSettings:
    """Where and as whom a step's pod runs. Only the operator uses them: a local run has no pod.
    The API server checks their contents when it admits the Job."""

    security_context: Mapping[str, Any] | None = None
    pod_security_context: Mapping[str, Any] | None = None
    tolerations: tuple[Mapping[str, Any], ...] | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)

    def merged(self, other: PodSettings) -> PodSettings:
        """A step's (``other``) settings over the defaults: each context and the tolerations
        replace the defaults' as a whole; node selector entries are added, the step's winning."""
        def pick(mine: Any, theirs: Any) -> Any:
            return mine if theirs is None else theirs

        return PodSettings(pick(self.security_context, other.security_context),
                           pick(self.pod_security_context, other.pod_security_context),
                           pick(self.tolerations, other.tolerations),
                           {**self.node_selector, **other.node_selector})


@dataclass(frozen=True)
class Step:
    """One step; optional fields keep ``None`` so that "unset" stays visible."""

    name: str
    index: int
    type: str = ""
    parallel: bool | None = None  # None = unset, so `parallel: false` + parallelGroup is caught
    parallel_group: int = 0
    depends_on: tuple[str, ...] | None = None
    image: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    script: str | None = None
    working_dir: str | None = None
    env: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] | None = None
    timeout_seconds: int | None = None
    retries: int = 0
    continue_on_error: bool = False
    estimated_seconds: float | None = None
    pod_metadata: PodMetadata = field(default_factory=PodMetadata)
    pod: PodSettings = field(default_factory=PodSettings)
    outputs: tuple[str, ...] = ()
    when: str | None = None
    pool: str | None = None  # R2: the StepPool it takes a slot of while it runs
    params: Mapping[str, str] = field(default_factory=dict)  # T3: its type's params, from `with`
    service_account_name: str | None = None  # replaces spec.serviceAccountName for this step
    final: bool = False  # a step of spec.finally (X1)
    matrix: tuple[Axis, ...] = ()  # M1, as written; a copy has none
    matrix_of: str | None = None  # M2: a copy's step
    matrix_values: Mapping[str, str] = field(default_factory=dict)  # M2: a copy's values
    copy_index: int = -1  # M2: a copy's number
    position: int = -1  # its index in its own list; ``index`` orders both lists, main first

    @property
    def path(self) -> str:
        """Where the step is in the document: ``spec.steps[3]`` or ``spec.finally[0]``."""
        where = "finally" if self.final else "steps"
        return f"spec.{where}[{self.index if self.position < 0 else self.position}]"

    @property
    def literals(self) -> dict[str, str]:
        """The variables whose values come from outside the workflow's text and arrive as given
        (T3, M2): params, then a copy's values and number ("" in a step not yet expanded)."""
        values = {**self.params, **{a.name: "" for a in self.matrix}, **self.matrix_values}
        if self.matrix or self.matrix_of is not None:
            values[INDEX_VARIABLE] = str(self.copy_index) if self.copy_index >= 0 else ""
        return values

    @property
    def output_sources(self) -> tuple[tuple[str, str, str], ...]:
        """(variable, step, output) for each env entry read from a step's output (O3)."""
        return tuple((var["name"], *source) for var in self.env
                     if (source := step_output_source(var)) is not None)

    @property
    def output_defaults(self) -> dict[str, str]:
        """The variables read from an output that has a default, with it."""
        return {var["name"]: default for var in self.env if (default := step_output_default(var)) is not None}

    @property
    def argv(self) -> tuple[str, ...]:
        """The process to run, the same way a container would: script runs under sh -c."""
        if self.script is not None:
            return ("sh", "-c", self.script)
        return self.command + self.args


@dataclass(frozen=True)
class Defaults:
    image: str | None = None
    env: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] | None = None
    pod_metadata: PodMetadata = field(default_factory=PodMetadata)
    pod: PodSettings = field(default_factory=PodSettings)


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    namespace: str | None
    steps: tuple[Step, ...]
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    failure_policy: str = "StopAfterGroup"
    timeout_seconds: int | None = None
    suspend: bool = False
    service_account_name: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    run_token: str | None = None  # changing it starts a new run of an unchanged workflow
    finally_steps: tuple[Step, ...] = ()  # spec.finally: run once the main steps are over (X1)
    max_resources: Mapping[str, Any] | None = None  # R1, as written; the plan parses it
    queue_name: str | None = None  # R3: the Kueue LocalQueue every Job is submitted to

    @property
    def all_steps(self) -> tuple[Step, ...]:
        return self.steps + self.finally_steps

    def step(self, name: str) -> Step:
        return self.all_steps[self.index_of[name]]

    @property
    def index_of(self) -> dict[str, int]:
        return {s.name: s.index for s in self.all_steps}


def read_workflow(doc: Any) -> tuple[WorkflowSpec | None, list[FieldError]]:
    """Parse what can be parsed and return it with every field-level error found.

    The partial spec lets :mod:`stepflow.plan` add its cross-step errors to the
    same list, so a user sees all problems in one go.
    """
    c = Collector()
    if not isinstance(doc, Mapping):
        return None, [FieldError("(document)", f"must be an object, got {described(doc)}")]
    foreign = foreign_shape(doc)
    if foreign is not None:
        return None, [foreign]
    c.unknown_fields(doc, TOP_FIELDS, "")
    c.header(doc, f"{API_GROUP}/{API_VERSION}", KIND)
    meta = c.mapping(doc.get("metadata"), "metadata")
    c.unknown_fields(meta, METADATA_FIELDS, "metadata")
    spec = c.mapping(doc.get("spec"), "spec")
    c.unknown_fields(spec, SPEC_FIELDS, "spec")
    steps = _parse_steps(spec.get("steps"), c)
    finally_steps = _parse_finally(spec.get("finally"), len(steps), c)
    _check_names(steps + finally_steps, c)
    policy = c.typed(spec, "failurePolicy", "spec", str, "StopAfterGroup")
    if policy not in FAILURE_POLICIES:
        c.error("spec.failurePolicy", f"must be one of {', '.join(FAILURE_POLICIES)}, "
                                      f"got {described(policy)}")
        policy = "StopAfterGroup"
    workflow = WorkflowSpec(
        name=c.typed(meta, "name", "metadata", str, ""),
        namespace=meta.get("namespace"),
        steps=steps,
        max_concurrency=c.integer(spec, "maxConcurrency", "spec", DEFAULT_MAX_CONCURRENCY, 1),
        failure_policy=policy,
        timeout_seconds=c.integer(spec, "timeoutSeconds", "spec", None, 1),
        suspend=c.typed(spec, "suspend", "spec", bool, False),
        service_account_name=c.typed(spec, "serviceAccountName", "spec", str),
        defaults=_parse_defaults(spec.get("defaults"), c),
        run_token=c.typed(spec, "runToken", "spec", str),
        finally_steps=finally_steps,
        max_resources=max_resources(spec, c),
        queue_name=queue_name(spec, c),
    )
    if not workflow.name:
        if isinstance(meta.get("name"), str | None):  # a name of another type was said by c.typed
            c.error("metadata.name", "is required")
    elif not DNS1123_SUBDOMAIN.fullmatch(workflow.name):
        c.error("metadata.name", f"{excerpt(workflow.name, 80)} is not a DNS-1123 subdomain (lower-case "
                                 "letters, digits, '-' and '.', starting and ending alphanumeric)")
    elif len(workflow.name) > MAX_WORKFLOW_NAME:
        c.error("metadata.name", f"has {len(workflow.name)} characters; at most {MAX_WORKFLOW_NAME} are "
                                 "allowed, because the name becomes the stepflow.dev/workflow label value "
                                 "and part of every Job name")
    _check_step_commands(workflow, c)
    return workflow, c.errors


def parse_workflow(doc: Any) -> WorkflowSpec:
    """Field-level parse only; use :func:`stepflow.plan.compile_workflow` for full validation."""
    workflow, errors = read_workflow(doc)
    if errors or workflow is None:
        raise SpecError(errors)
    return workflow


def _parse_defaults(value: Any, c: Collector) -> Defaults:
    obj = c.mapping(value, "spec.defaults")
    c.unknown_fields(obj, DEFAULTS_FIELDS, "spec.defaults")
    defaults = Defaults(
        image=c.typed(obj, "image", "spec.defaults", str),
        env=c.env(obj, "env", "spec.defaults"),
        resources=c.typed(obj, "resources", "spec.defaults", dict),
        pod_metadata=_pod_metadata(c, obj, "spec.defaults"),
        pod=_pod_settings(c, obj, "spec.defaults"),
    )
    c.errors += nested_errors(obj, "spec.defaults", c.errors, in_defaults=True)
    return defaults


def _parse_steps(value: Any, c: Collector) -> tuple[Step, ...]:
    if value is None or value == []:
        c.error("spec.steps", "must list at least one step")
        return ()
    if not isinstance(value, list):
        c.error("spec.steps", f"must be a list, got {described(value)}")
        return ()
    if len(value) > MAX_STEPS:
        c.error("spec.steps", f"has {len(value)} steps; at most {MAX_STEPS} are allowed")
        return ()
    return tuple(_parse_step(item, i, c) for i, item in enumerate(value))


def _parse_finally(value: Any, offset: int, c: Collector) -> tuple[Step, ...]:
    """spec.finally (X1): the same fields as spec.steps; ``index`` continues after the main steps."""
    if value is None:
        return ()
    if not isinstance(value, list):
        c.error("spec.finally", f"must be a list, got {described(value)}")
        return ()
    if offset + len(value) > MAX_STEPS:
        c.error("spec.finally", f"brings the steps to {offset + len(value)}; at most {MAX_STEPS} "
                                "are allowed in all")
        return ()
    return tuple(_parse_step(item, i, c, offset=offset, final=True) for i, item in enumerate(value))


def step_field_errors(obj: Mapping[str, Any], path: str) -> list[FieldError]:
    """The errors in a step's own fields, at ``path``: a step type's (T1) are checked here."""
    c = Collector()
    _parse_step(obj, 0, c, path=path)
    return c.errors


def _parse_step(item: Any, position: int, c: Collector, offset: int = 0, final: bool = False,
                path: str | None = None) -> Step:
    path = path or f"spec.{'finally' if final else 'steps'}[{position}]"
    errors_before = len(c.errors)
    obj = c.mapping(item, path, required=True)
    c.unknown_fields(obj, STEP_FIELDS, path)
    name = c.typed(obj, "name", path, str, "")
    step = Step(
        name=name,
        index=offset + position,
        position=position,
        final=final,
        outputs=c.outputs(obj, path),
        when=c.typed(obj, "when", path, str),
        pool=pool_name(obj, path, c),
        type=c.typed(obj, "type", path, str, ""),
        parallel=c.typed(obj, "parallel", path, bool, None),
        parallel_group=c.integer(obj, "parallelGroup", path, 0, None, MAX_PARALLEL_GROUP),
        depends_on=c.strings(obj, "dependsOn", path),
        image=c.typed(obj, "image", path, str),
        command=c.strings(obj, "command", path) or (),
        args=c.strings(obj, "args", path) or (),
        script=c.typed(obj, "script", path, str),
        working_dir=c.typed(obj, "workingDir", path, str),
        env=c.env(obj, "env", path),
        resources=c.typed(obj, "resources", path, dict),
        timeout_seconds=c.integer(obj, "timeoutSeconds", path, None, 1),
        retries=c.integer(obj, "retries", path, 0, 0, MAX_RETRIES),
        continue_on_error=c.typed(obj, "continueOnError", path, bool, False),
        estimated_seconds=_estimate(obj, path, c),
        pod_metadata=_pod_metadata(c, obj, path),
        pod=_pod_settings(c, obj, path),
        params=c.params(obj, path),
        matrix=read_matrix(obj, path, c),
        service_account_name=service_account(obj, path, c),
    )
    c.errors += nested_errors(obj, path, c.errors[errors_before:])
    _name_the_step(c, errors_before, name)
    return step


def _name_the_step(c: Collector, first: int, name: str) -> None:
    """Errors found inside a step name it: a path alone (``spec.steps[40].parallel``) makes the
    reader count steps in a long file."""
    if not name or not isinstance(name, str):
        return
    label = f'step "{name}"'
    for i in range(first, len(c.errors)):
        error = c.errors[i]
        if label not in error.message:
            c.errors[i] = FieldError(error.path, f"{label}: {error.message}")


def _estimate(obj: Mapping[str, Any], path: str, c: Collector) -> float | None:
    value = c.typed(obj, "estimatedSeconds", path, float)
    if value is not None and not 0 <= value < math.inf:  # also refuses .nan
        c.error(f"{path}.estimatedSeconds", f"must be a finite number >= 0, got {value}")
        return None
    return value


def _check_names(steps: tuple[Step, ...], c: Collector) -> None:
    """G6 and X2: names are DNS-1123 labels, unique across spec.steps and spec.finally."""
    first_seen: dict[str, str] = {}
    for step in steps:
        path = f"{step.path}.name"
        if step.path in c.not_objects:
            continue
        if not step.name:
            c.error(path, "is required")
        elif len(step.name) > 63 or not DNS1123_LABEL.fullmatch(step.name):
            c.error(path, f'step "{step.name}" is not a DNS-1123 label (lower-case letters, '
                          "digits and '-', starting and ending alphanumeric, at most 63 characters)")
        elif step.name in first_seen:
            c.error(path, f'duplicate step name "{step.name}" (also {first_seen[step.name]})')
        else:
            first_seen[step.name] = step.path


def _check_step_commands(workflow: WorkflowSpec, c: Collector) -> None:
    for step in workflow.all_steps:
        path = step.path
        label = f'step "{step.name}"'
        if path in c.not_objects:
            continue
        if step.script is not None and (step.command or step.args):
            c.error(path, f"{label} sets both script and command/args; use one")
        elif step.script is None and not step.command:
            c.error(path, f"{label} has nothing to run: set command or script, or a type that "
                          "says how it runs")
        elif step.script is not None and not step.script.strip():
            c.error(f"{path}.script", f"{label} has an empty script")


def _pod_metadata(c: Collector, obj: Mapping[str, Any], path: str) -> PodMetadata:
    meta = c.mapping(obj.get("podMetadata"), f"{path}.podMetadata")
    c.unknown_fields(meta, POD_METADATA_FIELDS, f"{path}.podMetadata")
    return PodMetadata(c.string_map(meta, "labels", f"{path}.podMetadata", labels=True, reserved=True),
                       c.string_map(meta, "annotations", f"{path}.podMetadata"))


def _pod_settings(c: Collector, obj: Mapping[str, Any], path: str) -> PodSettings:
    tolerations = c.typed(obj, "tolerations", path, list)
    if tolerations is not None:  # each item is checked against the schema (nested_errors)
        tolerations = tuple(t for t in tolerations if isinstance(t, Mapping))
    return PodSettings(
        security_context=c.typed(obj, "securityContext", path, dict),
        pod_security_context=c.typed(obj, "podSecurityContext", path, dict),
        tolerations=tolerations,
        node_selector=c.string_map(obj, "nodeSelector", path, labels=True),
    )
