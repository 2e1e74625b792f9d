"""Server-side validation of names, labels, owner references and Jobs (CRD schemas: schema.py).

A real API server rejects what an operator may get wrong (a 64-character Job name or label value,
an owner reference without a uid, a Job with restartPolicy Always); answering 422 here makes such
bugs fail in tests rather than in a cluster.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import cause
from .resources import ResourceType

Cause = dict[str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


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
