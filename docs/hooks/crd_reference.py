"""mkdocs hook: the field reference of a CRD, generated from its openAPIV3Schema at build time.

A page asks for it with a comment line, ``<!-- crd-fields: deploy/crds/workflows.stepflow.dev.yaml -->``,
which becomes one table per object of the schema (field, type, default, constraints and the
schema's own description), ``spec`` first, then ``status``. Nothing is typed by hand, so the
reference cannot drift from what the API server enforces. A subtree that repeats one already
shown (the items of ``spec.finally`` and ``spec.steps``, say) links to it instead of repeating it.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MARKER = re.compile(r"^<!-- crd-fields: (?P<path>\S+) -->$", re.MULTILINE)
INTEGER_FORMATS = ("int32", "int64")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root = Path(config["config_file_path"]).parent
    return MARKER.sub(lambda found: reference(root / found.group("path")), markdown)


def reference(crd_path: Path) -> str:
    """The Markdown reference of the CRD at ``crd_path``: one section per object."""
    crd = yaml.safe_load(crd_path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = version["schema"]["openAPIV3Schema"]
    writer = Writer(prefix=crd["spec"]["names"]["kind"].lower())
    for top in ("spec", "status"):
        if top in schema.get("properties", {}):
            writer.section(top, schema["properties"][top])
    return "\n".join(writer.out)


@dataclass
class Writer:
    prefix: str
    out: list[str] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # a subtree's JSON -> the path showing it

    def anchor(self, path: str) -> str:
        return f"{self.prefix}-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")

    def section(self, path: str, schema: dict[str, Any]) -> None:
        """A heading, the object's description and rules, a table of its fields, then the
        sections of the fields that are objects themselves."""
        self.shown.setdefault(_key(schema), path)
        self.out += [f"### `{path}` {{#{self.anchor(path)}}}", ""]
        if schema.get("description"):
            self.out += [_text(schema["description"]), ""]
        rules = [_text(r.get("message") or r["rule"]) for r in schema.get("x-kubernetes-validations", [])]
        if rules:
            self.out += ["Checked by the API server:", "", *(f"- {r}" for r in rules), ""]
        self.out += ["| field | type | default | constraints | description |",
                     "| --- | --- | --- | --- | --- |"]
        nested: list[tuple[str, dict[str, Any]]] = []
        required = set(schema.get("required", []))
        for name, child in schema.get("properties", {}).items():
            child_path, inner = _inner(f"{path}.{name}", child)
            description = _text(child.get("description", ""))
            if inner is not None:
                target = self.shown.get(_key(inner))
                if target is None:
                    nested.append((child_path, inner))
                    target = child_path
                    self.shown[_key(inner)] = child_path
                    verb = "Its fields"
                else:
                    verb = "Same fields as"
                description += f" {verb}: [`{target}`](#{self.anchor(target)})."
            self.out.append(
                f"| `{name}` | {_type(child)} | {_default(child)} | "
                f"{_constraints(child, name in required)} | {description.strip()} |"
            )
        self.out.append("")
        for child_path, inner in nested:
            self.section(child_path, inner)


def _inner(path: str, schema: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The object whose fields a field leads to (itself, its list items or its map values)."""
    if schema.get("properties"):
        return path, schema
    items = schema.get("items") or {}
    if items.get("properties"):
        return f"{path}[]", items
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and values.get("properties"):
        return f"{path}.<name>", values
    return path, None


def _key(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


def _type(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "integer or string"
    if "anyOf" in schema:
        return " or ".join(_type(option) for option in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        items = schema.get("items") or {}
        return f"list of {'objects' if items.get('properties') else _type(items)}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return f"map of string to {'object' if values.get('properties') else _type(values)}"
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return "object (any fields)"
    return kind


def _default(schema: dict[str, Any]) -> str:
    return f"`{json.dumps(schema['default'])}`" if "default" in schema else ""


def _constraints(schema: dict[str, Any], required: bool) -> str:
    found = ["**required**"] if required else []
    if "enum" in schema:
        found.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    found += _bounds(schema, "minimum", "maximum", "")
    found += _bounds(schema, "minLength", "maxLength", " characters")
    found += _bounds(schema, "minItems", "maxItems", " items")
    if "maxProperties" in schema:
        found.append(f"at most {schema['maxProperties']} entries")
    if "pattern" in schema:
        found.append(f"matches `{schema['pattern']}`")
    if schema.get("format") and schema["format"] not in INTEGER_FORMATS:
        found.append(f"format {schema['format']}")
    if schema.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(f"`{k}`" for k in schema.get("x-kubernetes-list-map-keys", []))
        found.append(f"entries unique by {keys}")
    elif schema.get("x-kubernetes-list-type") == "set":
        found.append("unique items")
    found += [_text(r.get("message") or r["rule"]) for r in schema.get("x-kubernetes-validations", [])]
    return "; ".join(found)  # messages are escaped by _text; a | inside a code span is safe


def _bounds(schema: dict[str, Any], low: str, high: str, unit: str) -> list[str]:
    if low in schema and high in schema:
        return [f"{schema[low]} to {schema[high]}{unit}"]
    if low in schema:
        return [f"at least {schema[low]}{unit}"]
    if high in schema:
        return [f"at most {schema[high]}{unit}"]
    return []


def _text(text: str) -> str:
    """A description as one table-safe line: whitespace folded; outside code spans, markup
    characters and ``|`` escaped (inside one, Markdown and the table extension leave them alone)."""
    parts = " ".join(text.split()).split("`")
    return "`".join(p if i % 2 else html.escape(p, quote=False).replace("|", "\\|")
                    for i, p in enumerate(parts))
