"""Label and field selectors, as in `?labelSelector=` and `?fieldSelector=` of list and watch.

kmock ignores both, so an operator that lists "Jobs of this workflow" would see every Job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)$")
_EQ_RE = re.compile(r"^(?P<key>[^\s!=(),]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^\s!=(),]*)$")
_EXISTS_RE = re.compile(r"^(?P<neg>!?)\s*(?P<key>[^\s!=(),]+)$")


def _split_requirements(selector: str) -> list[str]:
    """Split on commas that are not inside the parentheses of `in (a,b)`."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def _requirement(text: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _SET_RE.match(text):
        key, values = m["key"], {v.strip() for v in m["values"].split(",") if v.strip()}
        if m["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(text):
        key, value = m["key"], m["value"]
        if m["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_RE.match(text):
        key, negated = m["key"], bool(m["neg"])
        return lambda labels: (key in labels) != negated
    raise bad_request(f"unable to parse requirement: {text!r}")


def label_selector(selector: str | None) -> Predicate:
    """Compile a label selector (equality and set-based) into a predicate on objects."""
    requirements = [_requirement(part) for part in _split_requirements(selector or "")]

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(requirement(labels) for requirement in requirements)

    return matches


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def field_selector(selector: str | None) -> Predicate:
    """Compile a field selector; any dotted path works (metadata.name, status.phase, ...)."""
    checks: list[tuple[str, str, bool]] = []
    for part in _split_requirements(selector or ""):
        m = _EQ_RE.match(part)
        if not m:
            raise bad_request(f"invalid field selector: {part!r}")
        checks.append((m["key"], m["value"], m["op"] == "!="))

    def matches(obj: dict[str, Any]) -> bool:
        return all((_field_value(obj, key) == value) != negated for key, value, negated in checks)

    return matches
