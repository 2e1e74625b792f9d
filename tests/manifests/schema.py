"""The CRDs' schemas (the Workflow's by default), for the offline check of documents (examples/,
status fixtures) with jsonschema.

:func:`to_jsonschema` turns the structural OpenAPI v3 schema into JSON Schema that rejects
unknown fields the way the API server does with strict field validation (kubectl's default):
an object that lists ``properties`` gets ``additionalProperties: false`` unless it carries
``x-kubernetes-preserve-unknown-fields``; ``nullable`` admits null; ``int-or-string`` admits
both. ``metadata`` at the root is left open: the server validates ObjectMeta on its own.

What only the API server does (defaults, the keys of map lists, the CEL rules) is judged by the
real API server, in tests/kube/test_crd_rules.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "deploy" / "crds" / "workflows.stepflow.dev.yaml"
# kind -> its CRD, for a file that holds step types next to its Workflow (examples/platform-types.yaml)
CRD_OF_KIND = {"Workflow": CRD_PATH,
               "StepType": ROOT / "deploy" / "crds" / "steptypes.stepflow.dev.yaml",
               "ClusterStepType": ROOT / "deploy" / "crds" / "clustersteptypes.stepflow.dev.yaml"}
VERSION = "v1alpha1"

# Keywords copied as they are: they mean the same in OpenAPI v3 and JSON Schema.
_SAME = ("type", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
         "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties",
         "required", "format", "multipleOf")


@cache
def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def crd_schema(crd: dict[str, Any] | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of the served v1alpha1 version."""
    crd = crd or load_crd()
    version = next(v for v in crd["spec"]["versions"] if v["name"] == VERSION)
    return version["schema"]["openAPIV3Schema"]


def to_jsonschema(node: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {k: node[k] for k in _SAME if k in node}
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [to_jsonschema(sub, root=False) for sub in node[key]]
    if "not" in node:
        out["not"] = to_jsonschema(node["not"], root=False)
    if "items" in node:
        out["items"] = to_jsonschema(node["items"], root=False)
    if "properties" in node:
        out["properties"] = {
            name: ({"type": "object"} if root and name == "metadata"
                   else to_jsonschema(sub, root=False))
            for name, sub in node["properties"].items()
        }
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_jsonschema(node["additionalProperties"], root=False)
    elif node.get("type") == "object" and not preserve:
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # raises on 25:00 etc.
    return True


@FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@cache
def _validator(crd_path: Path = CRD_PATH) -> jsonschema.protocols.Validator:
    schema = to_jsonschema(crd_schema(load_crd(crd_path)))
    cls = jsonschema.validators.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMATS)


def validate(obj: dict[str, Any], crd_path: Path = CRD_PATH) -> list[str]:
    """What the CRD's schema (the Workflow's unless told) says is wrong with this object (its CEL
    rules aside)."""
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(_validator(crd_path).iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def iter_nodes(node: dict[str, Any], path: tuple[str, ...] = ()):
    """Every schema node with its path: property names, ``[]`` for items, ``{}`` for map values."""
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from iter_nodes(sub, (*path, name))
    if isinstance(node.get("items"), dict):
        yield from iter_nodes(node["items"], (*path, "[]"))
    if isinstance(node.get("additionalProperties"), dict):
        yield from iter_nodes(node["additionalProperties"], (*path, "{}"))
    for key in ("anyOf", "allOf", "oneOf"):
        for sub in node.get(key) or ():
            yield from iter_nodes(sub, (*path, key))
