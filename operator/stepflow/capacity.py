"""Resource budgets (R1): what a step requests, and whether it fits beside the running steps.

Pure, like the engine that calls it. Quantities follow the Kubernetes grammar (``500m``,
``1.5``, ``8Gi``, ``1e3``) and are parsed by the official client's parser, imported only once a
workflow has resources to parse: the client takes most of a second to import, which a plain
``stepflow run`` should not pay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from stepflow.field_checks import described

Quantities = Mapping[str, Decimal]

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity, or is negative; ``field`` says which entry
    (``limits.cpu``) when it comes from a container's resources."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def parse_quantity(value: Any) -> Decimal:
    from kubernetes.utils.quantity import parse_quantity as parse

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"must be a quantity such as \"500m\" or \"2Gi\", got {described(value)}")
    try:
        quantity = parse(value)
    except (ValueError, InvalidOperation, TypeError):
        raise QuantityError(f"{str(value)[:40]!r} is not a Kubernetes quantity (such as \"500m\", "
                            "\"1.5\" or \"2Gi\")") from None
    if not quantity.is_finite() or quantity < 0:
        raise QuantityError(f"must be a quantity >= 0, got {str(value)[:40]!r}")
    return quantity


def container_requests(resources: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """A container's requests, each defaulting to its limit, as Kubernetes defaults them.
    Raises QuantityError for the first value that does not parse."""
    if not resources:
        return {}
    found: dict[str, Decimal] = {}
    for kind in ("limits", "requests"):  # requests last: they win over the limits' defaults
        entries = resources.get(kind) or {}
        if not isinstance(entries, Mapping):
            raise QuantityError("must be an object of quantities", kind)
        for name, value in entries.items():
            try:
                found[str(name)] = parse_quantity(value)
            except QuantityError as exc:
                raise QuantityError(str(exc), f"{kind}.{name}") from None
    return found


def fits(need: Quantities, used: Quantities, budget: Quantities) -> bool:
    """Whether ``need`` fits beside ``used`` within ``budget``; resources the budget does not
    name are not limited."""
    return all(used.get(name, 0) + amount <= budget[name] for name, amount in need.items() if name in budget)


def add(total: dict[str, Decimal], more: Quantities) -> None:
    for name, amount in more.items():
        total[name] = total.get(name, Decimal(0)) + amount


def free(used: Quantities, budget: Quantities) -> dict[str, Decimal]:
    return {name: max(limit - used.get(name, Decimal(0)), Decimal(0)) for name, limit in budget.items()}


def describe(quantities: Quantities, names: Iterable[str] | None = None) -> str:
    """``cpu 2, memory 1Gi``: the named resources (default: all), in the order given."""
    names = list(quantities) if names is None else list(names)
    shown = (f"{name} {format_quantity(quantities.get(name, Decimal(0)))}" for name in names)
    return ", ".join(shown) or "nothing"


def format_quantity(value: Decimal) -> str:
    """The shortest usual spelling: ``2``, ``1500m``, ``512Mi``."""
    if value == value.to_integral_value():
        whole = int(value)
        for suffix, size in _BINARY:
            if whole >= size and whole % size == 0:
                return f"{whole // size}{suffix}"
        return str(whole)
    milli = value * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return format(value.normalize(), "f")
