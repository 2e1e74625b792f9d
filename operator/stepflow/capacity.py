"""Resource budgets (R1): what a step requests, and whether it fits beside the running steps.

Pure, like the engine that calls it. Quantities follow the Kubernetes grammar (``500m``,
``1.5``, ``8Gi``, ``1e3``) and are parsed by the official client's parser, imported only once a
workflow has resources to parse: the client takes most of a second to import, which a plain
``stepflow run`` should not pay.
"""

from __future__ import annotations

import re
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


# Kubernetes' grammar (apimachinery's resource.ParseQuantity): a number, then at most one suffix,
# binary (Ki ... Ei), decimal (n, u, m, k, M, G, T, P, E) or an integer exponent (e3, E-2).
_QUANTITY = re.compile(r"[+-]?(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?"
                       r"(?:[KMGTPE]i|[numkMGTPE]|[eE](?P<exponent>[+-]?[0-9]+))?")
# Kubernetes counts every resource in 64-bit integers and caps a binary quantity at 2^63-1; a
# nonzero quantity below 1n is rounded up to it. The API server never bounds an exponent, and
# spends minutes on "1e100000000" (then times out), so stepflow refuses what lies outside.
MAX_QUANTITY = Decimal(2**63 - 1)
MIN_QUANTITY = Decimal("1e-9")
_EXAMPLES = '(such as "500m", "1.5" or "2Gi")'


def parse_quantity(value: Any) -> Decimal:
    """A quantity as Kubernetes reads it, within what it can count: 0, or from 1n to 2^63-1.
    The string's order of magnitude is checked before the library parses it, so no huge number
    is ever built, whatever the exponent."""
    from kubernetes.utils.quantity import parse_quantity as parse

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"must be a quantity such as \"500m\" or \"2Gi\", got {described(value)}")
    shown = f"{value[:40]!r}" if isinstance(value, str) else str(value)[:40]
    if isinstance(value, str):
        shape = _QUANTITY.fullmatch(value)
        if shape is None or not (shape["whole"] or shape["fraction"]):
            raise QuantityError(f"{shown} is not a Kubernetes quantity {_EXAMPLES}")
        magnitude = _magnitude(shape["whole"], shape["fraction"] or "", shape["exponent"])
        if magnitude is not None and magnitude > 20:
            raise QuantityError(_too_large(shown))
        if magnitude is not None and magnitude < -10:
            raise QuantityError(_too_small(shown))
    try:
        quantity = parse(value)
    except (ValueError, InvalidOperation, TypeError):
        raise QuantityError(f"{shown} is not a Kubernetes quantity {_EXAMPLES}") from None
    if not quantity.is_finite() or quantity < 0:
        raise QuantityError(f"must be a quantity >= 0, got {shown}")
    if quantity > MAX_QUANTITY:
        raise QuantityError(_too_large(shown))
    if 0 < quantity < MIN_QUANTITY:
        raise QuantityError(_too_small(shown))
    return quantity


def _magnitude(whole: str, fraction: str, exponent: str | None) -> int | None:
    """``m`` such that the value is below ``10**m`` and at least ``10**(m - 1)``, before any
    SI suffix (a factor of 2^60 at most); None for zero. An exponent of more than 19 digits
    counts as huge (Kubernetes refuses one past int64)."""
    digits = whole.lstrip("0")
    if digits:
        magnitude = len(digits)
    elif fraction.strip("0"):
        magnitude = -(len(fraction) - len(fraction.lstrip("0")))
    else:
        return None
    if exponent is None:
        return magnitude
    sign, figures = (-1, exponent[1:]) if exponent.startswith("-") else (1, exponent.lstrip("+"))
    figures = figures.lstrip("0")
    if len(figures) > 19:
        return sign * 10**20
    return magnitude + sign * int(figures or "0")


def _too_large(shown: str) -> str:
    return (f"{shown} is more than Kubernetes can count: a quantity is at most {MAX_QUANTITY} "
            "(2^63-1, just under 8Ei)")


def _too_small(shown: str) -> str:
    return f"{shown} is less than 1n (0.000000001), the smallest quantity Kubernetes keeps, and not 0"


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
    """The shortest usual spelling: ``2``, ``1500m``, ``512Mi``; never a huge integer built to say
    so (sums of quantities stay within a few thousand times MAX_QUANTITY)."""
    if value.copy_abs() > MAX_QUANTITY * 10**6:
        return str(value)  # scientific notation, no arithmetic
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
