"""Server-side `Table` rendering, which kubectl asks for on `get` (Accept: ...;as=Table).

With a CRD's `additionalPrinterColumns`, `kubectl get swf` shows the Phase/Progress/... columns
exactly as a real server would, so the CRD's printer columns are exercised end to end.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from .resources import ResourceType

NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "priority": 0,
               "description": "Name must be unique within a namespace."}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
BUILTIN_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "pods": [{"name": "Status", "type": "string", "jsonPath": ".status.phase"},
             {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName", "priority": 1}],
    "jobs": [{"name": "Active", "type": "integer", "jsonPath": ".status.active"},
             {"name": "Succeeded", "type": "integer", "jsonPath": ".status.succeeded"},
             {"name": "Failed", "type": "integer", "jsonPath": ".status.failed"}],
    "events": [{"name": "Type", "type": "string", "jsonPath": ".type"},
               {"name": "Reason", "type": "string", "jsonPath": ".reason"},
               {"name": "Message", "type": "string", "jsonPath": ".message"}],
    "namespaces": [{"name": "Status", "type": "string", "jsonPath": ".status.phase"}],
}
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, path: str) -> Any:
    """The subset printer columns use: .a.b, [0], [?(@.type=="Ready")]."""
    values = [obj]
    for field, index, key, wanted in _STEP.findall(path):
        found = []
        for value in values:
            if field and isinstance(value, dict) and field in value:
                found.append(value[field])
            elif index and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
            elif key and isinstance(value, list):
                found += [v for v in value if str(jsonpath(v, "." + key)) == wanted]
        values = found
    return values[0] if len(values) == 1 else (values or None)


def human_age(stamp: str, now: datetime.datetime | None = None) -> str:
    """Like kubectl's duration.HumanDuration, coarsened the same way."""
    then = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def _cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    value = jsonpath(obj, column["jsonPath"])
    if value is None:
        return None
    if column.get("type") == "date" and isinstance(value, str):
        return human_age(value)
    if column.get("type") in ("integer", "number", "boolean"):
        return value
    return value if isinstance(value, str) else json.dumps(value)


def columns_for(rt: ResourceType) -> list[dict[str, Any]]:
    """A CRD's own columns (a real server adds none), else a few useful built-in ones."""
    if rt.custom:
        return list(rt.printer_columns) or [AGE_COLUMN]
    return [*BUILTIN_COLUMNS.get(rt.plural, []), AGE_COLUMN]


def render_table(rt: ResourceType, items: list[dict[str, Any]],
                 list_meta: dict[str, Any], include: str = "Metadata") -> dict[str, Any]:
    columns = columns_for(rt)
    definitions = [NAME_COLUMN] + [
        {"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
         "description": c.get("description", ""), "priority": c.get("priority", 0)}
        for c in columns]
    rows = []
    for obj in items:
        partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": obj["metadata"]}
        rows.append({"cells": [obj["metadata"]["name"], *(_cell(c, obj) for c in columns)],
                     "object": obj if include == "Object" else partial})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": definitions, "rows": rows}
