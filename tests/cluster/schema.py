"""CRD schemas: defaulting, pruning and validation of custom objects, with ratcheting.

As for a structural schema in the real API server: `default`s are applied, fields the schema
does not declare are pruned (unless `x-kubernetes-preserve-unknown-fields`), then the object is
validated with jsonschema (Draft 4 is the closest to OpenAPI v3) and its CEL rules (celrules.py).

On updates only what changed is examined (validation ratcheting, on by default since Kubernetes
1.30): an unchanged subtree was valid when it was stored. Besides being faithful, this keeps a
status patch of a 1,000-step Workflow from revalidating the whole spec on every write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema

from . import celrules
from .errors import cause
from .patches import clone
from .resources import ResourceType

Cause = dict[str, str]
ROOT_KEYS = ("apiVersion", "kind", "metadata")
CHILD_KEYWORDS = ("properties", "additionalProperties", "patternProperties", "items")
_ABSENT: Any = object()


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


def default_and_prune(value: Any, schema: dict[str, Any], old: Any = _ABSENT) -> Any:
    """Apply `default`s and drop undeclared fields; subtrees equal to the stored ones are
    returned as they are (they were normalised when stored)."""
    if old is not _ABSENT and value == old:
        return value
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
        sub = props.get(key, extra if isinstance(extra, dict) else None)
        if sub is not None:
            previous = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
            result[key] = default_and_prune(item, sub, previous)
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


def _cause(error: jsonschema.ValidationError, prefix: tuple[Any, ...]) -> Cause:
    field = _field(iter((*prefix, *error.absolute_path)))
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return cause(f"{field}.{missing}".lstrip("."), "Required value", "FieldValueRequired")
    reason = "FieldValueNotSupported" if error.validator == "enum" else "FieldValueInvalid"
    return cause(field, f"Invalid value: {error.instance!r}: {error.message}", reason)


class SchemaChecker:
    """One CRD version's openAPIV3Schema, compiled once and reused for every write."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.body_schema = dict(schema, properties={
            k: v for k, v in (schema.get("properties") or {}).items() if k not in ROOT_KEYS})
        self.rules = celrules.collect_rules(schema)
        self._validators: dict[tuple[int, bool], Any] = {}

    def _validator(self, schema: dict[str, Any], shallow: bool) -> Any:
        """A validator of a schema node; `shallow` leaves out its children's schemas."""
        key = (id(schema), shallow)
        if key not in self._validators:
            node = {k: v for k, v in schema.items() if not shallow or k not in CHILD_KEYWORDS}
            self._validators[key] = jsonschema.Draft4Validator(to_jsonschema(node))
        return self._validators[key]

    def normalize(self, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        body = {k: v for k, v in obj.items() if k not in ROOT_KEYS}
        old_body = {k: v for k, v in old.items() if k not in ROOT_KEYS} if old else _ABSENT
        pruned = default_and_prune(body, self.schema, old_body)
        return {**{k: obj[k] for k in ROOT_KEYS if k in obj}, **pruned}

    def check(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
        body = {k: v for k, v in obj.items() if k not in ROOT_KEYS}
        old_body = {k: v for k, v in old.items() if k not in ROOT_KEYS} if old else _ABSENT
        causes = [_cause(error, prefix)
                  for prefix, error in self._errors(body, old_body, self.body_schema, ())]
        if not causes:
            causes += celrules.check_rules(self.rules, obj, old)
        return causes

    def _errors(self, value: Any, old: Any, schema: dict[str, Any],
                path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """Schema errors in the parts of `value` that differ from `old`."""
        if old is not _ABSENT and value == old:
            return
        if old is _ABSENT or not isinstance(value, dict) or not isinstance(old, dict):
            for error in self._validator(schema, shallow=False).iter_errors(value):
                yield path, error
            return
        for error in self._validator(schema, shallow=True).iter_errors(value):
            yield path, error
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from self._errors(item, old.get(key, _ABSENT), sub, (*path, key))


_by_identity: dict[int, tuple[dict[str, Any], SchemaChecker]] = {}
_by_content: dict[str, SchemaChecker] = {}


def checker_for(rt: ResourceType) -> SchemaChecker | None:
    """Compiling a schema (jsonschema + CEL) is slow, so it is done once per distinct schema,
    even across emulators: every test loads the same Workflow CRD."""
    if not rt.custom or not rt.schema:
        return None
    cached = _by_identity.get(id(rt.schema))
    if cached is not None and cached[0] is rt.schema:
        return cached[1]
    if len(_by_identity) > 64:  # entries pin their schemas; drop those of finished emulators
        _by_identity.clear()
    content = json.dumps(rt.schema, sort_keys=True)
    checker = _by_content.get(content)
    if checker is None:
        checker = _by_content[content] = SchemaChecker(rt.schema)
    _by_identity[id(rt.schema)] = (rt.schema, checker)
    return checker
