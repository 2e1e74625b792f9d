"""Parse and validate a Workflow document into plain, immutable dataclasses.

Validation collects *every* problem before failing, because a user fixing a
manifest wants the whole list at once, each with the field path it concerns.
Rules that need the whole step list (G6 ordering, D2 references and cycles)
live in :mod:`stepflow.plan`, whose ``compile_workflow`` runs both layers.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API_GROUP = "stepflow.dev"
API_VERSION = "v1alpha1"
KIND = "Workflow"
# Set by `stepflow rerun --failed` to the new spec.runToken: that run keeps the previous successes.
RERUN_FAILED_ANNOTATION = f"{API_GROUP}/rerun-failed"
FAILURE_POLICIES = ("StopAfterGroup", "FailFast", "Continue")
DEFAULT_MAX_CONCURRENCY = 5
MAX_STEPS = 10_000
MAX_RETRIES = 10
MAX_PARALLEL_GROUP = 1_000_000  # the CRD's bound
MAX_WORKFLOW_NAME = 63  # a label value's limit: the name labels every Job (DESIGN.md, Names)
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # used with fullmatch
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
SPEC_FIELDS = (
    "maxConcurrency", "failurePolicy", "timeoutSeconds", "suspend",
    "serviceAccountName", "defaults", "steps", "runToken", "finally", "maxResources", "queueName",
)
POD_FIELDS = ("securityContext", "podSecurityContext", "tolerations", "nodeSelector")
DEFAULTS_FIELDS = ("image", "env", "resources", "podMetadata", *POD_FIELDS)
STEP_FIELDS = (
    "name", "type", "parallel", "parallelGroup", "dependsOn", "image", "command", "args",
    "script", "workingDir", "env", "resources", "timeoutSeconds", "retries",
    "continueOnError", "estimatedSeconds", "podMetadata", "outputs", "when", "pool", *POD_FIELDS,
)
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch (O1)
MAX_OUTPUT_NAME = 63
POD_METADATA_FIELDS = ("labels", "annotations")
# A qualified name, as Kubernetes checks label and annotation keys: an optional DNS subdomain
# prefix and '/', then at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric.
QUALIFIED_NAME = re.compile(r"(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                            r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
RESERVED_LABEL_PREFIXES = ("stepflow.dev/", "batch.kubernetes.io/", "controller-uid", "job-name")


@dataclass(frozen=True)
class FieldError:
    """One problem in a document, located by its field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """A document is invalid; carries every problem found, not just the first."""

    def __init__(self, errors: Iterable[FieldError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


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
    final: bool = False  # a step of spec.finally (X1)
    position: int = -1  # its index in its own list; ``index`` orders both lists, main first

    @property
    def path(self) -> str:
        """Where the step is in the document: ``spec.steps[3]`` or ``spec.finally[0]``."""
        where = "finally" if self.final else "steps"
        return f"spec.{where}[{self.index if self.position < 0 else self.position}]"

    @property
    def output_sources(self) -> tuple[tuple[str, str, str], ...]:
        """(variable, step, output) for each env entry read from a step's output (O3)."""
        return tuple((var["name"], *source) for var in self.env
                     if (source := step_output_source(var)) is not None)

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


def step_output_source(var: Mapping[str, Any]) -> tuple[str, str] | None:
    """(step, output) of an env entry ``valueFrom: {stepOutput: {step, output}}``, else None."""
    source = (var.get("valueFrom") or {}).get("stepOutput") if isinstance(var.get("valueFrom"), Mapping) \
        else None
    if not isinstance(source, Mapping):
        return None
    return str(source.get("step")), str(source.get("output"))


class _Collector:
    """Type-checking accessors that record errors instead of raising."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object, got {_kind(value)}")
            return {}
        return value

    def unknown_fields(self, obj: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
        for key in obj:
            if key in known:
                continue
            hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            suffix = f' (did you mean "{hint[0]}"?)' if hint else ""
            self.error(f"{path}.{key}" if path else str(key), f"unknown field{suffix}")

    def typed(self, obj: Mapping[str, Any], key: str, path: str, kind: type, default: Any = None):
        value = obj.get(key)
        if value is None:
            return default
        # bool is an int in Python; YAML's `yes` must not pass as a number, nor 1 as a bool.
        if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        self.error(f"{path}.{key}", f"must be {_TYPE_NAMES[kind]}, got {_kind(value)} {_excerpt(value)}")
        return default

    def integer(self, obj, key, path, default=None, minimum=None, maximum=None) -> int | None:
        value = self.typed(obj, key, path, int, default)
        if value is None or value is default:
            return value
        if minimum is not None and value < minimum:
            self.error(f"{path}.{key}", f"must be >= {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(f"{path}.{key}", f"must be <= {maximum}, got {value}")
            return default
        return value

    def strings(self, obj, key, path) -> tuple[str, ...] | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(f"{path}.{key}", f"must be a list of strings, got {_kind(value)}")
            return None
        good = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.error(f"{path}.{key}[{i}]", f"must be a string, got {_kind(item)} {_excerpt(item)}")
        return tuple(good)

    def env(self, obj, key, path) -> tuple[Mapping[str, Any], ...]:
        value = obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(f"{path}.{key}", f"must be a list of {{name, value}}, got {_kind(value)}")
            return ()
        good = []
        for i, item in enumerate(value):
            where = f"{path}.{key}[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                self.error(where, "must be an object with a string name")
                continue
            if not item["name"] or any(c in item["name"] for c in "=\0"):
                self.error(f"{where}.name", f"{_excerpt(item['name'])} is not a valid variable name "
                                            "(non-empty, no '=' or NUL)")
                continue
            if "value" in item and not isinstance(item["value"], str):
                self.error(f"{where}.value", f"must be a string, got {_kind(item['value'])}"
                           " (quote numbers and booleans)")
                continue
            if not self.step_output(item, where, allowed=key == "env" and not path.endswith("defaults")):
                continue
            good.append(dict(item))
        return tuple(good)

    def step_output(self, item: Mapping[str, Any], where: str, allowed: bool) -> bool:
        """O3's ``valueFrom.stepOutput``: exactly a step and an output name, and nothing else."""
        source = item.get("valueFrom")
        if not isinstance(source, Mapping) or "stepOutput" not in source:
            return True
        path = f"{where}.valueFrom.stepOutput"
        ref = source["stepOutput"]
        if not allowed:
            self.error(path, "is not allowed in spec.defaults.env: each step reads its own prerequisites")
            return False
        if len(source) > 1 or "value" in item:
            self.error(f"{where}.valueFrom", "stepOutput stands alone: no value and no other source")
            return False
        if not isinstance(ref, Mapping) or set(ref) != {"step", "output"} or not all(
                isinstance(ref[k], str) and ref[k] for k in ("step", "output")):
            self.error(path, f"must be {{step: NAME, output: NAME}}, got {_excerpt(ref)}")
            return False
        return True

    def outputs(self, obj: Mapping[str, Any], path: str) -> tuple[str, ...]:
        """O1: output names are identifiers, unique, at most 63 characters."""
        names = self.strings(obj, "outputs", path) or ()
        seen: set[str] = set()
        for i, name in enumerate(names):
            where = f"{path}.outputs[{i}]"
            if len(name) > MAX_OUTPUT_NAME or not OUTPUT_NAME.fullmatch(name):
                self.error(where, f"{_excerpt(name)} is not an output name (letters, digits and '_', "
                                  f"not starting with a digit, at most {MAX_OUTPUT_NAME} characters)")
            elif name in seen:
                self.error(where, f'declares output "{name}" twice')
            seen.add(name)
        return tuple(names)


    def pod_metadata(self, obj: Mapping[str, Any], path: str) -> PodMetadata:
        meta = self.mapping(obj.get("podMetadata"), f"{path}.podMetadata")
        self.unknown_fields(meta, POD_METADATA_FIELDS, f"{path}.podMetadata")
        return PodMetadata(self.string_map(meta, "labels", f"{path}.podMetadata", labels=True, reserved=True),
                           self.string_map(meta, "annotations", f"{path}.podMetadata"))

    def pod_settings(self, obj: Mapping[str, Any], path: str) -> PodSettings:
        tolerations = self.typed(obj, "tolerations", path, list)
        if tolerations is not None:
            for i, item in enumerate(tolerations):
                if not isinstance(item, Mapping):
                    self.error(f"{path}.tolerations[{i}]",
                               f"must be an object, got {_kind(item)} {_excerpt(item)}")
            tolerations = tuple(t for t in tolerations if isinstance(t, Mapping))
        return PodSettings(
            security_context=self.typed(obj, "securityContext", path, dict),
            pod_security_context=self.typed(obj, "podSecurityContext", path, dict),
            tolerations=tolerations,
            node_selector=self.string_map(obj, "nodeSelector", path, labels=True),
        )

    def string_map(self, obj: Mapping[str, Any], key: str, path: str, labels: bool = False,
                   reserved: bool = False) -> dict[str, str]:
        """A map of string to string with Kubernetes' key rules, and label-value rules for labels."""
        good = {}
        for name, value in self.mapping(obj.get(key), f"{path}.{key}").items():
            where = f"{path}.{key}[{_excerpt(name)}]"
            if not isinstance(name, str) or len(name) > 316 or not QUALIFIED_NAME.fullmatch(name):
                self.error(where, "is not a valid key (an optional DNS prefix and '/', then at most "
                                  "63 letters, digits, '-', '_' or '.', starting and ending alphanumeric)")
            elif not isinstance(value, str):
                self.error(where, f"must be a string, got {_kind(value)} (quote numbers and booleans)")
            elif reserved and name.startswith(RESERVED_LABEL_PREFIXES):
                self.error(where, "is reserved: stepflow and the Job controller set this label")
            elif labels and not LABEL_VALUE.fullmatch(value):
                self.error(where, f"{_excerpt(value)} is not a valid label value (at most 63 letters, "
                                  "digits, '-', '_' or '.', starting and ending alphanumeric)")
            else:
                good[name] = value
        return good


def _excerpt(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", float: "a number",
               dict: "an object", list: "a list"}


def _kind(value: Any) -> str:
    return {
        bool: "boolean", int: "integer", float: "number", str: "string",
        list: "list", dict: "object", type(None): "null",
    }.get(type(value), type(value).__name__)


def read_workflow(doc: Any) -> tuple[WorkflowSpec | None, list[FieldError]]:
    """Parse what can be parsed and return it with every field-level error found.

    The partial spec lets :mod:`stepflow.plan` add its cross-step errors to the
    same list, so a user sees all problems in one go.
    """
    c = _Collector()
    if not isinstance(doc, Mapping):
        return None, [FieldError("(document)", f"must be an object, got {_kind(doc)}")]
    c.unknown_fields(doc, TOP_FIELDS, "")
    _check_header(doc, c)
    meta = c.mapping(doc.get("metadata"), "metadata")
    spec = c.mapping(doc.get("spec"), "spec")
    c.unknown_fields(spec, SPEC_FIELDS, "spec")
    steps = _parse_steps(spec.get("steps"), c)
    finally_steps = _parse_finally(spec.get("finally"), len(steps), c)
    _check_names(steps + finally_steps, c)
    policy = c.typed(spec, "failurePolicy", "spec", str, "StopAfterGroup")
    if policy not in FAILURE_POLICIES:
        c.error("spec.failurePolicy", f"must be one of {', '.join(FAILURE_POLICIES)}, got {_excerpt(policy)}")
        policy = "StopAfterGroup"
    workflow = WorkflowSpec(
        name=str(meta.get("name") or ""),
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
        max_resources=_max_resources(spec, c),
        queue_name=_queue_name(spec, c),
    )
    if not workflow.name:
        c.error("metadata.name", "is required")
    elif not DNS1123_SUBDOMAIN.fullmatch(workflow.name):
        c.error("metadata.name", f"{_excerpt(workflow.name, 80)} is not a DNS-1123 subdomain (lower-case "
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


def _max_resources(spec: Mapping[str, Any], c: _Collector) -> Mapping[str, Any] | None:
    """R1's budget: resource names as Kubernetes spells them; the plan parses the quantities."""
    if spec.get("maxResources") is None:
        return None
    budget = {}
    for name, value in c.mapping(spec.get("maxResources"), "spec.maxResources").items():
        if not isinstance(name, str) or len(name) > 316 or not QUALIFIED_NAME.fullmatch(name):
            c.error(f"spec.maxResources[{_excerpt(name)}]", "is not a resource name (such as cpu, memory "
                                                           "or nvidia.com/gpu)")
        else:
            budget[name] = value
    return budget


def _queue_name(spec: Mapping[str, Any], c: _Collector) -> str | None:
    """R3: a LocalQueue's name, which labels every Job (so at most 63 characters)."""
    name = c.typed(spec, "queueName", "spec", str)
    if name is not None and (len(name) > 63 or not DNS1123_SUBDOMAIN.fullmatch(name)):
        c.error("spec.queueName", f"{_excerpt(name)} is not a LocalQueue name (lower-case letters, digits, "
                                  "'-' and '.', starting and ending alphanumeric, at most 63 characters)")
        return None
    return name


def _check_header(doc: Mapping[str, Any], c: _Collector) -> None:
    expected = f"{API_GROUP}/{API_VERSION}"
    if doc.get("apiVersion") != expected:
        c.error("apiVersion", f"must be {expected!r}, got {_excerpt(doc.get('apiVersion'))}")
    if doc.get("kind") != KIND:
        c.error("kind", f"must be {KIND!r}, got {_excerpt(doc.get('kind'))}")


def _parse_defaults(value: Any, c: _Collector) -> Defaults:
    obj = c.mapping(value, "spec.defaults")
    c.unknown_fields(obj, DEFAULTS_FIELDS, "spec.defaults")
    return Defaults(
        image=c.typed(obj, "image", "spec.defaults", str),
        env=c.env(obj, "env", "spec.defaults"),
        resources=c.typed(obj, "resources", "spec.defaults", dict),
        pod_metadata=c.pod_metadata(obj, "spec.defaults"),
        pod=c.pod_settings(obj, "spec.defaults"),
    )


def _parse_steps(value: Any, c: _Collector) -> tuple[Step, ...]:
    if value is None or value == []:
        c.error("spec.steps", "must list at least one step")
        return ()
    if not isinstance(value, list):
        c.error("spec.steps", f"must be a list, got {_kind(value)}")
        return ()
    if len(value) > MAX_STEPS:
        c.error("spec.steps", f"has {len(value)} steps; at most {MAX_STEPS} are allowed")
        return ()
    return tuple(_parse_step(item, i, c) for i, item in enumerate(value))


def _parse_finally(value: Any, offset: int, c: _Collector) -> tuple[Step, ...]:
    """spec.finally (X1): the same fields as spec.steps; ``index`` continues after the main steps."""
    if value is None:
        return ()
    if not isinstance(value, list):
        c.error("spec.finally", f"must be a list, got {_kind(value)}")
        return ()
    if offset + len(value) > MAX_STEPS:
        c.error("spec.finally", f"brings the steps to {offset + len(value)}; at most {MAX_STEPS} "
                                "are allowed in all")
        return ()
    return tuple(_parse_step(item, i, c, offset=offset, final=True) for i, item in enumerate(value))


def _parse_step(item: Any, position: int, c: _Collector, offset: int = 0, final: bool = False) -> Step:
    path = f"spec.{'finally' if final else 'steps'}[{position}]"
    errors_before = len(c.errors)
    obj = c.mapping(item, path)
    c.unknown_fields(obj, STEP_FIELDS, path)
    name = c.typed(obj, "name", path, str, "")
    step = Step(
        name=name,
        index=offset + position,
        position=position,
        final=final,
        outputs=c.outputs(obj, path),
        when=c.typed(obj, "when", path, str),
        pool=_pool_name(obj, path, c),
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
        pod_metadata=c.pod_metadata(obj, path),
        pod=c.pod_settings(obj, path),
    )
    _name_the_step(c, errors_before, name)
    return step


def _pool_name(obj: Mapping[str, Any], path: str, c: _Collector) -> str | None:
    """R2: a StepPool's name: a DNS-1123 subdomain, like every object's, and a label value."""
    name = c.typed(obj, "pool", path, str)
    if name is not None and (len(name) > 63 or not DNS1123_SUBDOMAIN.fullmatch(name)):
        c.error(f"{path}.pool", f"{_excerpt(name)} is not a StepPool name (lower-case letters, digits, '-' "
                                "and '.', starting and ending alphanumeric, at most 63 characters: it "
                                "labels the step's Jobs)")
        return None
    return name


def _name_the_step(c: _Collector, first: int, name: str) -> None:
    """Errors found inside a step name it: a path alone (``spec.steps[40].parallel``) makes the
    reader count steps in a long file."""
    if not name or not isinstance(name, str):
        return
    label = f'step "{name}"'
    for i in range(first, len(c.errors)):
        error = c.errors[i]
        if label not in error.message:
            c.errors[i] = FieldError(error.path, f"{label}: {error.message}")


def _estimate(obj: Mapping[str, Any], path: str, c: _Collector) -> float | None:
    value = c.typed(obj, "estimatedSeconds", path, float)
    if value is not None and not 0 <= value < math.inf:  # also refuses .nan
        c.error(f"{path}.estimatedSeconds", f"must be a finite number >= 0, got {value}")
        return None
    return value


def _check_names(steps: tuple[Step, ...], c: _Collector) -> None:
    """G6 and X2: names are DNS-1123 labels, unique across spec.steps and spec.finally."""
    first_seen: dict[str, str] = {}
    for step in steps:
        path = f"{step.path}.name"
        if not step.name:
            c.error(path, "is required")
        elif len(step.name) > 63 or not DNS1123_LABEL.fullmatch(step.name):
            c.error(path, f'step "{step.name}" is not a DNS-1123 label (lower-case letters, '
                          "digits and '-', starting and ending alphanumeric, at most 63 characters)")
        elif step.name in first_seen:
            c.error(path, f'duplicate step name "{step.name}" (also {first_seen[step.name]})')
        else:
            first_seen[step.name] = step.path


def _check_step_commands(workflow: WorkflowSpec, c: _Collector) -> None:
    for step in workflow.all_steps:
        path = step.path
        label = f'step "{step.name}"'
        if step.script is not None and (step.command or step.args):
            c.error(path, f"{label} sets both script and command/args; use one")
        elif step.script is None and not step.command:
            c.error(path, f"{label} has nothing to run: set command or script")
        elif step.script is not None and not step.script.strip():
            c.error(f"{path}.script", f"{label} has an empty script")


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader when present (3-4x faster on a 10,000-step file), refusing
    duplicate keys: YAML's last-one-wins would drop a whole ``steps`` list without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_excerpt(key_node.value)}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # a 10,000-step workflow is about 1 MiB
MAX_EXPANDED_VALUES = 1_000_000  # what a document may grow to through YAML aliases


def expanded_size(value: Any, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values ``value`` holds once every alias is expanded, counted without expanding:
    an alias is one shared object, so sizes are memoised by identity. Stops past ``limit``."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        children = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1
        for key, child in children:
            total += size(key) + size(child) if isinstance(node, dict) else size(child)
            if total > limit:
                break
        sizes[id(node)] = total
        return total

    return size(value)


def iter_documents(text: str) -> Iterator[Any]:
    """Yield the YAML documents of a file, turning parser errors into SpecError.

    Files are unreviewed input (``validate`` runs in CI on pull requests): a size limit and a
    bound on alias expansion keep a 500-byte "billion laughs" file from taking minutes and GBs.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise SpecError([FieldError("(file)", f"is {len(text):,} bytes; at most {MAX_DOCUMENT_BYTES:,} "
                                              "are read")])
    try:
        for doc in yaml.load_all(text, Loader=_StrictLoader):
            if doc is None:
                continue
            if expanded_size(doc) > MAX_EXPANDED_VALUES:
                raise SpecError([FieldError("(document)", f"expands to more than {MAX_EXPANDED_VALUES:,} "
                                                          "values through YAML aliases")])
            yield doc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([FieldError(where, f"malformed YAML: {problem}")]) from None


def read_documents(path: str | Path) -> list[Any]:
    """Read the YAML documents of a file; unreadable or malformed files raise SpecError."""
    try:
        # "-" is standard input, as for kubectl apply -f -
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([FieldError("(file)", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError:
        raise SpecError([FieldError("(file)", "is not UTF-8 text")]) from None
    docs = list(iter_documents(text))
    if not docs:
        raise SpecError([FieldError("(file)", "contains no Workflow document")])
    return docs
