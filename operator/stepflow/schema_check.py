"""A value checked against the schema the CRD is generated from (:mod:`stepflow.fields`), at
every depth, as the API server checks it: unknown fields (with a did-you-mean, as at the top),
types, enums, required fields, lengths and counts.

:mod:`stepflow.spec` reads the fields it understands with its own accessors; this walk covers
what they pass through whole (a step's env, resources, security contexts, tolerations), so that
``env: [{name: X, valu: "1"}]`` or ``resources: {request: ...}`` is refused where it is written
instead of quietly meaning nothing. Quantities are left to :mod:`stepflow.capacity`, and CEL rules
to the places that implement them.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from stepflow import fields
from stepflow.field_checks import FieldError, described, excerpt

# ObjectMeta's fields: a typo there (`nmae`) is refused like any other.
METADATA_FIELDS = ("name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
                   "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "finalizers", "ownerReferences", "managedFields", "selfLink")
# A step's fields that stepflow.spec reads whole, so checked here at every depth.
NESTED_FIELDS = ("with", "env", "resources", "securityContext", "podSecurityContext", "tolerations",
                 "nodeSelector", "podMetadata")
_STEP = {f.name: f.schema for f in fields.STEP}
_DEFAULTS = {f.name: f.defaults_schema for f in fields.DEFAULTS}
_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                       "boolean": (bool,), "object": (dict, Mapping), "array": (list,)}
_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "a boolean",
               "object": "an object", "array": "a list"}


def did_you_mean(key: Any, known: Any) -> str:
    """`` (did you mean "requests"?)`` for a near miss among ``known``, else ""."""
    hint = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f' (did you mean "{hint[0]}"?)' if hint else ""


def nested_errors(obj: Mapping[str, Any], path: str, reported: list[FieldError],
                  in_defaults: bool = False) -> list[FieldError]:
    """The :data:`NESTED_FIELDS` of a step (or of spec.defaults) against their schemas; a place
    the accessors already ``reported`` is said once, by them."""
    errors: list[FieldError] = []
    schemas = _DEFAULTS if in_defaults else _STEP
    for name in NESTED_FIELDS:
        value, schema = obj.get(name), schemas.get(name)
        if value is None or schema is None:
            continue
        where = f"{path}.{name}"
        said = [e.path for e in reported if _within(e.path, where)]
        found = schema_errors(value, schema, where)
        errors += [e for e in found if not any(_within(e.path, p) for p in said)]
    return errors


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((ancestor + ".", ancestor + "["))


def schema_errors(value: Any, schema: Mapping[str, Any], path: str) -> list[FieldError]:
    """Every way ``value`` breaks ``schema``, each at its field path."""
    errors: list[tuple[Any, str]] = []
    _validator(schema)(value, path, errors)
    return [FieldError(_render(where), message) for where, message in errors]


# A place is built only for an error: (parent, key) pairs, an int key an index, rendered by _render.
_Place = Any
_Check = Callable[[Any, _Place, list], None]
_VALIDATORS: dict[int, tuple[Mapping[str, Any], _Check]] = {}


def _render(place: _Place) -> str:
    parts = []
    while isinstance(place, tuple):
        place, key = place
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}" if _plain(key) else
                     f"[{excerpt(key)}]")
    return place + "".join(reversed(parts))


def _validator(schema: Mapping[str, Any]) -> _Check:
    """A schema node as a function, built once: a 10,000-step file walks the same nodes often."""
    known = _VALIDATORS.get(id(schema))
    if known is None:
        known = _VALIDATORS[id(schema)] = (schema, _build(schema))  # keeps the schema alive with its id
    return known[1]


def _build(schema: Mapping[str, Any]) -> _Check:
    if "x-kubernetes-int-or-string" in schema:
        return lambda value, place, errors: None  # quantities are parsed (and bounded) by stepflow.capacity
    kind = schema.get("type")
    inner = {"object": _object, "array": _array}.get(kind or "", _scalar)(schema)
    if kind is None:
        return inner
    types, word = _TYPES[kind], _TYPE_WORDS[kind]

    def check(value: Any, place: _Place, errors: list) -> None:
        if value is None:
            return  # null is "unset"
        if not isinstance(value, types) or (isinstance(value, bool) and kind != "boolean"):
            errors.append((place, f"must be {word}, got {described(value)}"))  # `yes` is no number
        else:
            inner(value, place, errors)
    return check


def _object(schema: Mapping[str, Any]) -> _Check:
    properties = schema.get("properties")
    checks = None if properties is None else {key: _validator(child) for key, child in properties.items()}
    extra = schema.get("additionalProperties")
    values = None if extra is None else _validator(extra)
    limit, required = schema.get("maxProperties"), tuple(schema.get("required", ()))

    def check(value: Mapping[str, Any], place: _Place, errors: list) -> None:
        if limit is not None and len(value) > limit:
            errors.append((place, f"has {len(value)} entries; at most {limit} are allowed"))
        for key in required:
            if value.get(key) is None:
                errors.append(((place, key), "is required"))
        for key, child in value.items():
            if checks is not None:
                field = checks.get(key)
                if field is not None:
                    field(child, (place, key), errors)
                else:
                    errors.append(((place, key), f"unknown field{did_you_mean(key, checks)}"))
            elif values is not None:
                values(child, (place, key), errors)
    return check


@functools.lru_cache(maxsize=4096)
def _plain(key: Any) -> bool:
    return isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_-]+", key) is not None



def _array(schema: Mapping[str, Any]) -> _Check:
    most, least = schema.get("maxItems"), schema.get("minItems")
    items = None if schema.get("items") is None else _validator(schema["items"])

    def check(value: list[Any], place: _Place, errors: list) -> None:
        if most is not None and len(value) > most:
            errors.append((place, f"has {len(value)} items; at most {most} are allowed"))
        if least is not None and len(value) < least:
            errors.append((place, f"has {len(value)} items; at least {least} are needed"))
        if items is not None:
            for i, item in enumerate(value):
                items(item, (place, i), errors)
    return check


def _scalar(schema: Mapping[str, Any]) -> _Check:
    allowed = schema.get("enum")
    most, least = schema.get("maxLength"), schema.get("minLength")
    low, high = schema.get("minimum"), schema.get("maximum")
    pattern = None if schema.get("pattern") is None else re.compile(schema["pattern"])

    def check(value: Any, place: _Place, errors: list) -> None:
        if allowed is not None and value not in allowed:
            shown = ", ".join(repr(a) if a == "" else str(a) for a in allowed)
            errors.append((place, f"must be one of {shown}; got {described(value)}"
                                  f"{did_you_mean(value, [a for a in allowed if a])}"))
        elif isinstance(value, str):
            if most is not None and len(value) > most:
                errors.append((place, f"is {len(value):,} characters long; at most {most:,} are allowed"))
            elif least and len(value) < least:
                errors.append((place, "must not be empty"))
            if pattern is not None and pattern.search(value) is None:
                errors.append((place, f"{excerpt(value)} does not match {pattern.pattern}"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if low is not None and value < low:
                errors.append((place, f"must be >= {low}, got {value}"))
            elif high is not None and value > high:
                errors.append((place, f"must be <= {high}, got {value}"))
    return check
