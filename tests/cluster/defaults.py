"""What the real API server fills in on create for the built-in kinds the operator touches.

Operators read these back (e.g. `spec.backoffLimit`, the `job-name` pod label), so a test that
passes only because a field happens to be absent would mislead.
"""

from __future__ import annotations

from typing import Any

from .resources import ResourceType, types_from_crd

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"


def _job(obj: dict[str, Any]) -> None:
    meta, spec = obj["metadata"], obj.setdefault("spec", {})
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    if not meta.get("labels") and template_meta.get("labels"):
        meta["labels"] = dict(template_meta["labels"])
    for key, value in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1),
                       ("completionMode", "NonIndexed"), ("suspend", False),
                       ("podReplacementPolicy", "TerminatingOrFailed"), ("manualSelector", False)):
        spec.setdefault(key, value)
    uid, name = meta["uid"], meta["name"]
    spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID: uid}})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), CONTROLLER_UID: uid,
                               JOB_NAME: name, "controller-uid": uid, "job-name": name}


def _crd(obj: dict[str, Any]) -> None:
    names = obj.get("spec", {}).get("names", {})
    types_from_crd(obj)  # raises KeyError early on a malformed CRD
    obj["status"] = {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in obj["spec"].get("versions", []) if v.get("storage")],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted"},
        ],
    }


def apply_create_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Mutate a new object (metadata already has uid and name) like the server's defaulting."""
    key = (rt.group, rt.plural)
    if key == ("batch", "jobs"):
        _job(obj)
    elif key == ("", "namespaces"):
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = \
            obj["metadata"]["name"]
    elif key == ("", "pods"):
        obj["status"] = {"phase": "Pending"}
        obj.setdefault("spec", {}).setdefault("restartPolicy", "Always")
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        _crd(obj)
