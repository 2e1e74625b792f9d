"""Server-side validation: names, labels, owner references, Jobs, and CRD schemas.

A real API server rejects what an operator may get wrong (a 64-character Job name, an owner
reference without a uid, a status field missing from the CRD schema). Answering 422 here, or
pruning like the real server, makes such bugs fail in tests rather than in a cluster.

CRD schemas are enforced the way a structural schema is: defaults applied, unknown fields pruned
(unless `x-kubernetes-preserve-unknown-fields`), then validated with jsonschema (Draft 4, which is
what OpenAPI v3 schemas are closest to). `x-kubernetes-validations` (CEL) rules are evaluated by
`celrules.py` when the `cel` package is importable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema

from . import celrules
from .errors import cause
from .patches import clone
from .resources import ResourceType

Cause = dict[str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
ROOT_KEYS = ("apiVersion", "kind", "metadata")


def validate_name(rt: ResourceType, name: str) -> list[Cause]:
    pattern = _LABEL if rt.max_name_length <= 63 else _SUBDOMAIN
    if len(name) > rt.max_name_length:
        return [cause("metadata.name", f"Invalid value: {name!r}: must be no more than "
                                       f"{rt.max_name_length} characters")]
    if not pattern.match(name):
        return [cause("metadata.name", f"Invalid value: {name!r}: a lowercase RFC 1123 name "
                                       "must consist of lower case alphanumeric characters, "
                                       "'-' or '.'")]
    return []


def _key_errors(field: str, key: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix))) or \
            len(name) > 63 or not _QUALIFIED.match(name):
        return [cause(field, f"Invalid value: {key!r}: name part must consist of alphanumeric "
                             "characters, '-', '_' or '.', and be at most 63 characters")]
    return []


def validate_metadata(meta: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        field = f"metadata.labels[{key}]"
        causes += _key_errors(field, key)
        if not isinstance(value, str) or len(value) > 63 or (value and not _QUALIFIED.match(value)):
            causes.append(cause(field, f"Invalid value: {value!r}: a valid label must be an empty "
                                       "string or at most 63 alphanumeric characters, '-', '_' "
                                       "or '.'"))
    for key in meta.get("annotations") or {}:
        causes += _key_errors(f"metadata.annotations[{key}]", key)
    for i, ref in enumerate(meta.get("ownerReferences") or ()):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(field):
                causes.append(cause(f"metadata.ownerReferences[{i}].{field}",
                                    "Required value", "FieldValueRequired"))
    return causes


def _pod_spec_errors(field: str, spec: dict[str, Any], restart_policies: tuple[str, ...]) -> list:
    causes = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(cause(f"{field}.containers", "Required value", "FieldValueRequired"))
    for i, container in enumerate(containers):
        for key in ("name", "image"):
            if not container.get(key):
                causes.append(cause(f"{field}.containers[{i}].{key}", "Required value",
                                    "FieldValueRequired"))
    policy = spec.get("restartPolicy", "Always")
    if policy not in restart_policies:
        causes.append(cause(f"{field}.restartPolicy", f"Unsupported value: {policy!r}: "
                                                      f"supported values: {restart_policies}",
                            "FieldValueNotSupported"))
    return causes


def validate_kind(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list:
    """The few built-in rules an operator creating Jobs is likely to trip over."""
    if (rt.group, rt.plural) == ("batch", "jobs"):
        spec = obj.get("spec") or {}
        causes = _pod_spec_errors("spec.template.spec", (spec.get("template") or {}).get("spec")
                                  or {}, ("OnFailure", "Never"))
        if old is not None and spec.get("template") != old.get("spec", {}).get("template"):
            causes.append(cause("spec.template", "Invalid value: field is immutable"))
        return causes
    if (rt.group, rt.plural) == ("", "pods") and old is None:
        return _pod_spec_errors("spec", obj.get("spec") or {}, ("Always", "OnFailure", "Never"))
    return []


def to_jsonschema(schema: Any) -> Any:
    """Translate the OpenAPI extensions that jsonschema does not know into plain JSON Schema."""
    if isinstance(schema, list):
        return [to_jsonschema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {k: to_jsonschema(v) for k, v in schema.items()
              if not k.startswith("x-kubernetes-") and k not in ("nullable", "default")}
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


def default_and_prune(value: Any, schema: dict[str, Any]) -> Any:
    """Apply `default`s and drop fields the structural schema does not declare."""
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [default_and_prune(item, schema["items"]) for item in value]
    if not isinstance(value, dict) or schema.get("type", "object") != "object":
        return value
    keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    props: dict[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    result = {}
    for key, item in value.items():
        if key in props:
            result[key] = default_and_prune(item, props[key])
        elif isinstance(extra, dict):
            result[key] = default_and_prune(item, extra)
        elif keep_unknown or extra is True or (embedded and key in ROOT_KEYS):
            result[key] = item
    for key, sub in props.items():
        if key not in result and "default" in sub:
            result[key] = default_and_prune(clone(sub["default"]), sub)
    return result


def _field(path: Iterator[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


class SchemaChecker:
    """Validation of one CRD version's openAPIV3Schema (compiled once, reused per request)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        body_schema = dict(schema, properties={
            k: v for k, v in (schema.get("properties") or {}).items() if k not in ROOT_KEYS})
        self.validator = jsonschema.Draft4Validator(to_jsonschema(body_schema))
        self.rules = celrules.collect_rules(schema)

    def normalize(self, obj: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in obj.items() if k not in ROOT_KEYS}
        pruned = default_and_prune(body, self.schema)
        return {**{k: obj[k] for k in ROOT_KEYS if k in obj}, **pruned}

    def check(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        body = {k: v for k, v in obj.items() if k not in ROOT_KEYS}
        causes = [self._cause(error) for error in self.validator.iter_errors(body)]
        if not causes:
            causes += celrules.check_rules(self.rules, obj, old)
        return causes

    @staticmethod
    def _cause(error: jsonschema.ValidationError) -> Cause:
        field = _field(iter(error.absolute_path))
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            return cause(f"{field}.{missing}".lstrip("."), "Required value", "FieldValueRequired")
        reason = "FieldValueNotSupported" if error.validator == "enum" else "FieldValueInvalid"
        return cause(field, f"Invalid value: {error.instance!r}: {error.message}", reason)


_checkers: dict[int, tuple[dict[str, Any], SchemaChecker]] = {}


def checker_for(rt: ResourceType) -> SchemaChecker | None:
    if not rt.custom or not rt.schema:
        return None
    cached = _checkers.get(id(rt.schema))
    if cached is None or cached[0] is not rt.schema:
        cached = (rt.schema, SchemaChecker(rt.schema))
        _checkers[id(rt.schema)] = cached
    return cached[1]
