"""What a cluster refuses and a local run tolerates: a step without an image, more steps than
the CRD takes, a quantity Kubernetes cannot parse, resources the API server would refuse in the
step's Job (a request above its limit, an extended resource overcommitted or fractional, a
resource name that is not one), resource claims, and step types too large to keep in a status.

``stepflow validate`` and the operator run these checks, so that a file that validates also
applies; ``stepflow run`` does not, which keeps it lenient about images and sizes. Apart from
:mod:`stepflow.operator`, so that the CLI's local commands never import kopf.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stepflow.capacity import QuantityError, format_quantity, parse_quantity
from stepflow.matrix import as_written
from stepflow.plan import Plan
from stepflow.schema_check import did_you_mean
from stepflow.spec import FieldError

MAX_CLUSTER_STEPS = 1000  # the CRD's maxItems; the local runner takes 10,000
MAX_CLUSTER_FINALLY_STEPS = 50  # the CRD's maxItems of spec.finally
# A run keeps the step types it resolved in its status (T5); an object is at most ~1.5 MiB in
# etcd, so a few large types could make every status write fail. Refused up front instead.
MAX_KEPT_STEP_TYPES_BYTES = 256 * 1024


def image_errors(plan: Plan) -> list[FieldError]:
    """A Job needs an image; a local run does not, so this check lives here."""
    if plan.spec.defaults.image:
        return []
    return [FieldError(f"{s.path}.image",
                       f'step "{s.name}" has no image; set it or spec.defaults.image')
            for s in as_written(plan) if not s.image]


def cluster_errors(plan: Plan) -> list[FieldError]:
    """What a cluster refuses and a local run tolerates: ``stepflow validate`` and the operator
    check these, so that a file that validates also applies."""
    errors = image_errors(plan) + kept_types_errors(plan)
    if len(plan.spec.steps) > MAX_CLUSTER_STEPS:
        errors.append(FieldError("spec.steps", f"has {len(plan.spec.steps)} steps; a cluster takes at most "
                                               f"{MAX_CLUSTER_STEPS} (stepflow run takes 10,000)"))
    if len(plan.spec.finally_steps) > MAX_CLUSTER_FINALLY_STEPS:
        errors.append(FieldError("spec.finally", f"has {len(plan.spec.finally_steps)} steps; a cluster takes "
                                                 f"at most {MAX_CLUSTER_FINALLY_STEPS}"))
    places = [("spec.defaults.resources", plan.spec.defaults.resources, "")]
    places += [(f"{s.path}.resources", s.resources, f'step "{s.name}": ') for s in as_written(plan)]
    for path, resources, label in places:
        errors += _quantity_errors(path, resources or {})
        errors += [FieldError(e.path, label + e.message) for e in _requirement_errors(path, resources or {})]
        if (resources or {}).get("claims"):
            reason = ("is not supported yet: a step's pod cannot declare the resourceClaims a claim "
                      "needs, so its Job would be refused")
            errors.append(FieldError(f"{path}.claims", reason))
    return errors


def kept_types_errors(plan: Plan) -> list[FieldError]:
    kept = {name: t.kept() for name, t in plan.step_types.items()}
    size = len(json.dumps(kept, separators=(",", ":")))
    if size <= MAX_KEPT_STEP_TYPES_BYTES:
        return []
    largest = sorted(kept, key=lambda name: -len(json.dumps(kept[name])))[:3]
    return [FieldError("spec.steps", f"the step types these steps use take {size // 1024} KiB "
                                     f"(largest: {', '.join(largest)}); a run keeps them in its status, "
                                     f"which holds at most {MAX_KEPT_STEP_TYPES_BYTES // 1024} KiB of them")]


# Kubernetes' container resources without a domain (pkg/apis/core/helper: IsStandardContainerResourceName).
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _container_resource(name: str) -> bool:
    return "/" in name or name in STANDARD_RESOURCES or name.startswith("hugepages-")


def _overcommittable(resource: str) -> bool:
    """Native resources but huge pages may be requested below their limit (IsOvercommitAllowed)."""
    native = "/" not in resource or "kubernetes.io/" in resource
    return native and not resource.startswith("hugepages-")


def _requirement_errors(path: str, resources: Mapping[str, Any]) -> list[FieldError]:
    """What the API server's ValidateResourceRequirements refuses when it admits the Job."""
    parsed: dict[str, dict[str, Any]] = {}
    errors = []
    for kind in ("limits", "requests"):
        entries = resources.get(kind)
        parsed[kind] = {}
        for name, value in (entries.items() if isinstance(entries, Mapping) else ()):
            where = f"{path}.{kind}.{name}"
            if not _container_resource(str(name)):
                hint = did_you_mean(name, STANDARD_RESOURCES)
                errors.append(FieldError(where, (
                    f"{name!r} is not a container resource (cpu, memory, ephemeral-storage, "
                    f"hugepages-<size>, or a name with a domain such as nvidia.com/gpu){hint}")))
                continue
            try:
                amount = parse_quantity(value)
            except QuantityError:
                continue  # said by _quantity_errors
            if not _overcommittable(str(name)) and amount != amount.to_integral_value():
                errors.append(FieldError(where, f"{name} must be a whole number, got "
                                                f"{format_quantity(amount)}"))
                continue
            parsed[kind][str(name)] = amount
    limits = parsed["limits"]
    for name, request in parsed["requests"].items():
        where = f"{path}.requests.{name}"
        limit = limits.get(name)
        if limit is None:
            if not _overcommittable(name) and name not in (resources.get("limits") or {}):
                errors.append(FieldError(f"{path}.limits.{name}", (
                    f"is required: {name} cannot be overcommitted, so a request needs a limit (set only the "
                    "limit: the request defaults to it)")))
        elif not _overcommittable(name) and request != limit:
            errors.append(FieldError(where, f"{name} {format_quantity(request)} must equal its limit "
                                            f"({format_quantity(limit)}): {name} cannot be overcommitted"))
        elif request > limit:
            errors.append(FieldError(where, f"{name} {format_quantity(request)} is more than its limit "
                                            f"({format_quantity(limit)}); a request may not pass its limit"))
    return errors


def _quantity_errors(path: str, resources: Mapping[str, Any]) -> list[FieldError]:
    errors = []
    for kind in ("requests", "limits"):
        for resource, value in (resources.get(kind) or {}).items():
            try:
                parse_quantity(value)
            except QuantityError as exc:
                errors.append(FieldError(f"{path}.{kind}.{resource}", str(exc)))
    return errors
