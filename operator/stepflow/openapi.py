"""Builders of OpenAPI v3 schema nodes, the language of a CRD's structural schema.

Each builder returns a plain dict whose keys come in one fixed order (the type and its bounds,
then the description, then the rules and the children), so that the generated CRD reads the
same way at every depth and a change to one field shows as a small diff. A ``pattern`` is a
regular expression the whole value must match: the builders anchor it, as Kubernetes' own
schemas spell it, so that :mod:`stepflow.spec` can use the same text with ``re.fullmatch``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]

# Kubernetes' name syntaxes (k8s.io/apimachinery/pkg/util/validation), unanchored.
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
# Kubernetes' quantity syntax (resource.Quantity), as its own OpenAPI schema spells it.
QUANTITY = (r"(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
            r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?")
UNSIGNED_QUANTITY = QUANTITY.replace(r"(\+|-)?", r"(\+)?", 1)


def _node(kind: str | None, description: str | None, **keywords: Any) -> Schema:
    """A schema node: ``type``, the keywords that are set (``None`` means absent), then the
    description. Keyword names are OpenAPI's, with ``_`` for ``-`` (x_kubernetes_...)."""
    node: Schema = {} if kind is None else {"type": kind}
    node.update({key.replace("_", "-"): value for key, value in keywords.items()
                 if value is not None and value != ()})
    if description is not None:
        node["description"] = description
    return node


def anchored(pattern: str) -> str:
    return f"^{pattern}$"


def string(description: str | None, *, min_length: int | None = None, max_length: int | None = None,
           pattern: str | None = None, enum: Iterable[str] | None = None, default: str | None = None,
           date_time: bool = False) -> Schema:
    return _node("string", description, format="date-time" if date_time else None,
                 minLength=min_length, maxLength=max_length,
                 pattern=None if pattern is None else anchored(pattern),
                 enum=None if enum is None else list(enum), default=default)


def integer(description: str, *, bits: int | None = 32, minimum: int | None = None,
            maximum: int | None = None, default: int | None = None) -> Schema:
    """``bits`` is the format, int32 or int64; None leaves it out."""
    return _node("integer", description, format=None if bits is None else f"int{bits}", minimum=minimum,
                 maximum=maximum, default=default)


def number(description: str, *, minimum: float | None = None) -> Schema:
    return _node("number", description, minimum=minimum)


def boolean(description: str, *, default: bool | None = None) -> Schema:
    return _node("boolean", description, default=default)


def quantity(description: str, *, pattern: str = QUANTITY) -> Schema:
    """An integer or a string such as 500m or 1Gi, as Kubernetes declares resource.Quantity."""
    return {"anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": anchored(pattern),
            "x-kubernetes-int-or-string": True, "description": description}


def array(description: str, items: Schema, *, min_items: int | None = None, max_items: int | None = None,
          list_type: str | None = None, map_keys: Iterable[str] = (),
          rules: Iterable[Schema] = ()) -> Schema:
    """A list; ``list_type`` ``set`` or ``map`` (keyed by ``map_keys``) tells the API server how
    to compare and merge it."""
    node = _node("array", description, minItems=min_items, maxItems=max_items,
                 x_kubernetes_list_type=list_type, x_kubernetes_list_map_keys=list(map_keys) or None)
    return _children(node, rules=rules, items=items)


def obj(description: str | None, properties: Mapping[str, Schema] | None = None, *,
        required: Iterable[str] = (), rules: Iterable[Schema] = (), max_properties: int | None = None,
        values: Schema | None = None) -> Schema:
    """An object with named ``properties``, or a map whose every value is ``values``."""
    node = _node("object", description, maxProperties=max_properties)
    return _children(node, required=required, rules=rules, properties=properties, values=values)


def _children(node: Schema, *, required: Iterable[str] = (), rules: Iterable[Schema] = (),
              properties: Mapping[str, Schema] | None = None, items: Schema | None = None,
              values: Schema | None = None) -> Schema:
    if required := list(required):
        node["required"] = required
    if rules := list(rules):
        node["x-kubernetes-validations"] = rules
    if properties is not None:
        node["properties"] = dict(properties)
    if items is not None:
        node["items"] = items
    if values is not None:
        node["additionalProperties"] = values
    return node


def rule(expression: str, message: str, *, message_expression: str | None = None,
         reason: str | None = None, field_path: str | None = None) -> Schema:
    """One ``x-kubernetes-validations`` entry: a CEL expression the API server checks on every
    write, and what it answers when the expression is false."""
    return _node(None, None, rule=expression, message=message, messageExpression=message_expression,
                 reason=reason, fieldPath=field_path)
