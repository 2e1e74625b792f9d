"""Field-level checks of a document: type-checking accessors that record every problem, with its
field path, instead of stopping at the first.

:mod:`stepflow.spec` builds a Workflow with them; the errors they collect are what ``stepflow
validate``, the operator's InvalidSpec and the CLI print.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stepflow import fields
from stepflow.fields import MAX_OUTPUT_NAME

OUTPUT_NAME = re.compile(fields.OUTPUT_NAME)  # used with fullmatch (O1)
DNS1123_SUBDOMAIN = re.compile(fields.DNS1123_SUBDOMAIN)
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


class Collector:
    """Type-checking accessors that record errors instead of raising."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.not_objects: set[str] = set()  # paths said to be no object: nothing more is said of them

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def header(self, doc: Mapping[str, Any], api_version: str, kind: str) -> None:
        if doc.get("apiVersion") != api_version:
            self.error("apiVersion", f"must be {api_version!r}, got {described(doc.get('apiVersion'))}")
        if doc.get("kind") != kind:
            self.error("kind", f"must be {kind!r}, got {described(doc.get('kind'))}")

    def mapping(self, value: Any, path: str, required: bool = False) -> Mapping[str, Any]:
        """An object at ``path``; null is "unset" ({}) unless ``required`` (a list's item, say)."""
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be an object, got {described(value)}")
            self.not_objects.add(path)
            return {}
        return value

    def unknown_fields(self, obj: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
        for key in obj:
            if key in known:
                continue
            hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            suffix = f' (did you mean "{hint[0]}"?)' if hint else ""
            self.error(f"{path}.{key}" if path else str(key), f"unknown field{suffix}")

    def typed(self, obj: Mapping[str, Any], key: str, path: str, kind: type, default: Any = None) -> Any:
        value = obj.get(key)
        if value is None:
            return default
        # bool is an int in Python; YAML's `yes` must not pass as a number, nor 1 as a bool.
        if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        self.error(f"{path}.{key}", f"must be {TYPE_NAMES[kind]}, got {described(value)}")
        return default

    def integer(self, obj: Mapping[str, Any], key: str, path: str, default: int | None = None,
                minimum: int | None = None, maximum: int | None = None) -> int | None:
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

    def strings(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(f"{path}.{key}", f"must be a list of strings, got {described(value)}")
            return None
        good = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.error(f"{path}.{key}[{i}]", f"must be a string, got {described(item)}")
        return tuple(good)

    def env(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[Mapping[str, Any], ...]:
        value = obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(f"{path}.{key}", f"must be a list of {{name, value}}, got {described(value)}")
            return ()
        good = []
        first: dict[str, int] = {}
        for i, item in enumerate(value):
            where = f"{path}.{key}[{i}]"
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                self.error(where, "must be an object with a string name, such as {name: X, value: '1'}")
                continue
            if not item["name"] or any(c in item["name"] for c in "=\0"):
                self.error(f"{where}.name", f"{excerpt(item['name'])} is not a valid variable name "
                                            "(non-empty, no '=' or NUL)")
                continue
            if item["name"] in first:  # the API server keys the list by name
                self.error(f"{where}.name", f'declares "{item["name"]}" again (also '
                                            f'{key}[{first[item["name"]]}]); each variable is declared once')
                continue
            first[item["name"]] = i
            if "value" in item and not isinstance(item["value"], str):
                self.error(f"{where}.value", f"must be a string, got {described(item['value'])}"
                           " (quote numbers and booleans)")
                continue
            if not self._one_source(item, where):
                continue
            if not self.step_output(item, where, allowed=key == "env" and not path.endswith("defaults")):
                continue
            good.append(dict(item))
        return tuple(good)

    def _one_source(self, item: Mapping[str, Any], where: str) -> bool:
        """As Kubernetes: a value or a valueFrom, and valueFrom names exactly one source."""
        source = item.get("valueFrom")
        if source is None:
            return True
        if item.get("value"):
            self.error(f"{where}.valueFrom", "may not be set together with a non-empty value")
            return False
        if isinstance(source, Mapping) and len(source) != 1:
            self.error(f"{where}.valueFrom", f"must name exactly one source, got {len(source)}"
                       + (f" ({', '.join(map(str, source))})" if source else ""))
            return False
        return True

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
        if "value" in item:
            self.error(f"{where}.valueFrom", "stepOutput stands alone: no value and no other source")
            return False
        if not isinstance(ref, Mapping):
            self.error(path, f"must be an object {{step: NAME, output: NAME}}, got {described(ref)}")
            return False
        if not {"step", "output"} <= set(ref) or set(ref) - {"step", "output", "default"} or not all(
                isinstance(ref[k], str) and ref[k] for k in ("step", "output")):
            return False  # the schema check names each missing, unknown or mistyped field
        default = ref.get("default")
        if default is not None and (not isinstance(default, str) or "\0" in default
                                    or len(default) > fields.MAX_OUTPUT_DEFAULT):
            self.error(f"{path}.default", f"must be a string of at most {fields.MAX_OUTPUT_DEFAULT:,} "
                                          "characters without NUL (quote numbers and booleans)")
            return False
        return True

    def outputs(self, obj: Mapping[str, Any], path: str) -> tuple[str, ...]:
        """O1: output names are identifiers, unique, at most 63 characters."""
        names = self.strings(obj, "outputs", path) or ()
        seen: set[str] = set()
        for i, name in enumerate(names):
            where = f"{path}.outputs[{i}]"
            if len(name) > MAX_OUTPUT_NAME or not OUTPUT_NAME.fullmatch(name):
                self.error(where, f"{excerpt(name)} is not an output name (letters, digits and '_', "
                                  f"not starting with a digit, at most {MAX_OUTPUT_NAME} characters)")
            elif name in seen:
                self.error(where, f'declares output "{name}" twice')
            seen.add(name)
        return tuple(names)

    def params(self, obj: Mapping[str, Any], path: str) -> dict[str, str]:
        """T3's values, as :mod:`stepflow.step_types` completed them; each names a variable."""
        params = {}
        given = self.mapping(obj.get("with"), f"{path}.with")
        if len(given) > fields.MAX_PARAMS:
            self.error(f"{path}.with", f"has {len(given)} params; at most {fields.MAX_PARAMS}")
        for name, value in given.items():
            where = f"{path}.with.{name}"
            if not isinstance(name, str) or len(name) > 63 or not OUTPUT_NAME.fullmatch(name):
                self.error(where, "is not a param name (letters, digits and '_', not starting with a digit)")
            elif not isinstance(value, str):
                self.error(where, f"must be a string, got {described(value)} (quote numbers and booleans)")
            elif "\0" in value:
                self.error(where, "contains a NUL byte, which no environment variable can carry")
            elif len(value) > fields.MAX_PARAM_VALUE:
                self.error(where, f"is {len(value)} characters long; at most {fields.MAX_PARAM_VALUE}")
            else:
                params[name] = value
        return params

    def string_map(self, obj: Mapping[str, Any], key: str, path: str, labels: bool = False,
                   reserved: bool = False) -> dict[str, str]:
        """A map of string to string with Kubernetes' key rules, and label-value rules for labels."""
        good = {}
        for name, value in self.mapping(obj.get(key), f"{path}.{key}").items():
            where = f"{path}.{key}[{excerpt(name)}]"
            if not isinstance(name, str) or len(name) > 316 or not QUALIFIED_NAME.fullmatch(name):
                self.error(where, "is not a valid key (an optional DNS prefix and '/', then at most "
                                  "63 letters, digits, '-', '_' or '.', starting and ending alphanumeric)")
            elif not isinstance(value, str):
                self.error(where, f"must be a string, got {described(value)} (quote numbers and booleans)")
            elif reserved and name.startswith(RESERVED_LABEL_PREFIXES):
                self.error(where, "is reserved: stepflow and the Job controller set this label")
            elif labels and not LABEL_VALUE.fullmatch(value):
                self.error(where, f"{excerpt(value)} is not a valid label value (at most 63 letters, "
                                  "digits, '-', '_' or '.', starting and ending alphanumeric)")
            else:
                good[name] = value
        return good


def step_output_source(var: Mapping[str, Any]) -> tuple[str, str] | None:
    """(step, output) of an env entry ``valueFrom: {stepOutput: {step, output}}``, else None."""
    source = _step_output(var)
    if source is None:
        return None
    return str(source.get("step")), str(source.get("output"))


def step_output_default(var: Mapping[str, Any]) -> str | None:
    """The ``default`` of an env entry's ``stepOutput``: its value when the producer did not
    succeed; None without one (the reader is then Skipped, OutputUnavailable)."""
    source = _step_output(var)
    default = None if source is None else source.get("default")
    return default if isinstance(default, str) else None


def _step_output(var: Mapping[str, Any]) -> Mapping[str, Any] | None:
    source = (var.get("valueFrom") or {}).get("stepOutput") if isinstance(var.get("valueFrom"), Mapping) \
        else None
    return source if isinstance(source, Mapping) else None


def foreign_shape(doc: Mapping[str, Any]) -> FieldError | None:
    """One error for a file in innominatus' shape (``workflows:`` or ``steps:`` at the top), which
    would otherwise get an error per missing field, none of them saying what to do."""
    if "apiVersion" in doc or "kind" in doc or not {"workflows", "steps"} & set(doc):
        return None
    workflows = doc.get("workflows")
    names = list(workflows)[:5] if isinstance(workflows, Mapping) else []
    what = (f"workflows ({', '.join(map(str, names))}): write each as a Workflow of its own, its steps "
            "under spec.steps" if names else "steps: put them under spec.steps")
    return FieldError("(document)", (
        "looks like an innominatus workflow file (workflows: or steps: at the top), but stepflow reads "
        "Kubernetes resources: apiVersion: stepflow.dev/v1alpha1, kind: Workflow, metadata: {name: NAME}, "
        f"spec: {{steps: [...]}}. It holds {what}; the steps' fields (name, type, parallel, "
        "parallelGroup) stay as they are"))


def described(value: Any) -> str:
    """A value as an error message names it, in YAML's words: ``null``, ``integer 5``,
    ``string 'abc'``, ``a list of 2 items``, ``an object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, Mapping):
        return "an object"
    return f"{kind_of(value)} {excerpt(value)}"


def excerpt(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


TYPE_NAMES = {bool: "a boolean", int: "an integer", str: "a string", float: "a number",
              dict: "an object", list: "a list"}


def kind_of(value: Any) -> str:
    """A value's type in the document's words (YAML's, not Python's)."""
    return {
        bool: "boolean", int: "integer", float: "number", str: "string",
        list: "list", dict: "object", type(None): "null",
    }.get(type(value), type(value).__name__)


# --- names of other objects a workflow refers to ------------------------------------------------

def max_resources(spec: Mapping[str, Any], c: Collector) -> Mapping[str, Any] | None:
    """R1's budget: resource names as Kubernetes spells them; the plan parses the quantities."""
    if spec.get("maxResources") is None:
        return None
    budget = {}
    for name, value in c.mapping(spec.get("maxResources"), "spec.maxResources").items():
        if not isinstance(name, str) or len(name) > 316 or not QUALIFIED_NAME.fullmatch(name):
            c.error(f"spec.maxResources[{excerpt(name)}]", "is not a resource name (such as cpu, memory "
                                                           "or nvidia.com/gpu)")
        else:
            budget[name] = value
    return budget


def queue_name(spec: Mapping[str, Any], c: Collector) -> str | None:
    """R3: a LocalQueue's name, which labels every Job (so at most 63 characters)."""
    name = c.typed(spec, "queueName", "spec", str)
    if name is not None and (len(name) > 63 or not DNS1123_SUBDOMAIN.fullmatch(name)):
        c.error("spec.queueName", f"{excerpt(name)} is not a LocalQueue name (lower-case letters, digits, "
                                  "'-' and '.', starting and ending alphanumeric, at most 63 characters)")
        return None
    return name


def service_account(obj: Mapping[str, Any], path: str, c: Collector) -> str | None:
    name = c.typed(obj, "serviceAccountName", path, str)
    if name is not None and (len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name)):
        c.error(f"{path}.serviceAccountName", f"{excerpt(name)} is not a ServiceAccount name")
        return None
    return name


def pool_name(obj: Mapping[str, Any], path: str, c: Collector) -> str | None:
    """R2: a StepPool's name: a DNS-1123 subdomain, like every object's, and a label value."""
    name = c.typed(obj, "pool", path, str)
    if name is not None and (len(name) > 63 or not DNS1123_SUBDOMAIN.fullmatch(name)):
        c.error(f"{path}.pool", f"{excerpt(name)} is not a StepPool name (lower-case letters, digits, '-' "
                                "and '.', starting and ending alphanumeric, at most 63 characters: it "
                                "labels the step's Jobs)")
        return None
    return name
