"""The worst-case cost of a ``when``, estimated at validation as the API server estimates the CEL
rules of a CRD: from the largest size every value may take, never from one run's values.

Two limits hold at evaluation. The library stops a comprehension (``all``, ``exists``,
``exists_one``, ``map``, ``filter``) after :data:`MAX_ITERATIONS` iterations in all, nested ones
counted for each outer one; and nothing stops a value from growing (``[[1]].map(x, x + x)``,
chained thirty times, asks for a list of a billion elements). So a condition whose worst case
iterates more than the library allows, or costs more than :data:`MAX_COST`, is refused with its
field path before it can run. What is not refused evaluates within both bounds.

The estimate walks the type-checked expression the library gives (``Expression.serialize()``,
a ``cel.expr.CheckedExpr`` in protobuf's wire format, read here without the protobuf runtime).
Each value has a size: a string its length, a list or a map its entries, with the size of its
elements. Outputs are at most :data:`MAX_OUTPUTS` entries of :data:`MAX_OUTPUT_BYTES` each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ITERATIONS = 10_000  # cel-expr-python's comprehension budget per evaluation ("Iteration budget")
MAX_COST = 1_000_000  # the API server's limit on one evaluation of a CRD rule
MAX_OUTPUTS = 32  # a step's outputs (the CRD's maxItems)
MAX_OUTPUT_BYTES = 4000  # all of a step's outputs together (O2)


@dataclass(frozen=True)
class Shape:
    """The largest a value may be: ``size`` characters or entries; ``item``, ``key``: its
    elements' (a map's values and keys)."""

    size: int = 0
    item: Shape | None = None
    key: Shape | None = None

    def __or__(self, other: Shape) -> Shape:
        """Either of two values: the larger of each."""
        return Shape(max(self.size, other.size), _join(self.item, other.item), _join(self.key, other.key))

    @property
    def elements(self) -> int:
        """Every character or entry it holds, nested ones included: the cost of reading it whole."""
        inner = max(self.item.elements if self.item else 0, self.key.elements if self.key else 0)
        return self.size * (1 + inner)


def _join(a: Shape | None, b: Shape | None) -> Shape | None:
    return b if a is None else a if b is None else a | b


SCALAR = Shape()


def variable_shapes(placeholders: tuple[str, ...]) -> dict[str, Shape]:
    """What each variable a condition sees may hold at most (W2)."""
    shapes = {"workflow.name": Shape(253), "workflow.namespace": Shape(63), "workflow.failed": SCALAR}
    for placeholder in placeholders:
        shapes[f"{placeholder}.phase"] = Shape(16)
        shapes[f"{placeholder}.exitCode"] = SCALAR
        shapes[f"{placeholder}.outputs"] = Shape(MAX_OUTPUTS, item=Shape(MAX_OUTPUT_BYTES), key=Shape(63))
    return shapes


@dataclass
class Estimate:
    cost: int = 0
    iterations: int = 0


def estimate(serialized: bytes, variables: Mapping[str, Shape]) -> Estimate:
    """The worst-case cost and comprehension iterations of a compiled expression."""
    expr = _one(_checked(serialized), 4)
    return _Walker(dict(variables)).walk(expr or b"")[1]


def referenced_names(serialized: bytes) -> frozenset[str]:
    """The variables and functions a compiled expression refers to (its reference map), such as
    ``workflow.failed``; a name inside a string literal is no reference."""
    names = set()
    for number, entry in _checked(serialized):
        if number == 2:  # reference_map: int64 id -> Reference {name = 1}
            reference = _one(_fields(entry), 2)
            names.add(_text(_one(_fields(reference or b""), 1)))
    return frozenset(names)


def _checked(serialized: bytes) -> list[tuple[int, Any]]:
    """The fields of the ``cel.expr.CheckedExpr`` inside ``Expression.serialize()``'s Any."""
    return _fields(_one(_fields(serialized), 2) or b"")


class _Walker:
    """The shape and the cost of each node of a ``cel.expr.Expr``, children first."""

    def __init__(self, variables: dict[str, Shape]) -> None:
        self.scope = variables
        self.accumulator: str | None = None  # the innermost comprehension's accumulator

    def walk(self, expr: bytes) -> tuple[Shape, Estimate]:
        fields = _fields(expr)
        for number, value in fields:
            if number == 3:
                return self._constant(value), Estimate(1)
            if number == 4:
                return self.scope.get(_text(_one(_fields(value), 1)), SCALAR), Estimate(1)
            if number == 5:
                return self._select(value)
            if number == 6:
                return self._call(value)
            if number == 7:
                return self._list(value)
            if number == 8:
                return self._map(value)
            if number == 9:
                return self._comprehension(value)
        return SCALAR, Estimate(1)

    def _constant(self, value: bytes) -> Shape:
        for number, content in _fields(value):
            if number in (6, 7):  # string_value, bytes_value
                return Shape(len(content))
        return SCALAR

    def _select(self, value: bytes) -> tuple[Shape, Estimate]:
        fields = _fields(value)
        operand, total = self.walk(_one(fields, 1) or b"")
        total.cost += 1
        if _one(fields, 3):  # has(): a test, never a value
            return SCALAR, total
        return operand.item or SCALAR, total

    def _list(self, value: bytes) -> tuple[Shape, Estimate]:
        total, item = Estimate(1), None
        elements = [content for number, content in _fields(value) if number == 1]
        for element in elements:
            shape, cost = self.walk(element)
            _add(total, cost)
            item = _join(item, shape)
        return Shape(len(elements), item=item), total

    def _map(self, value: bytes) -> tuple[Shape, Estimate]:
        total, key, item, count = Estimate(1), None, None, 0
        for number, entry in _fields(value):
            if number != 2:
                continue
            count += 1
            parts = _fields(entry)
            for part, into in ((3, "key"), (4, "item")):
                content = _one(parts, part)
                if content is None:
                    continue
                shape, cost = self.walk(content)
                _add(total, cost)
                key, item = (_join(key, shape), item) if into == "key" else (key, _join(item, shape))
        return Shape(count, item=item, key=key), total

    def _call(self, value: bytes) -> tuple[Shape, Estimate]:
        fields = _fields(value)
        function = _text(_one(fields, 2))
        operands = [content for number, content in fields if number in (1, 3)]  # target, then args
        walked = [self.walk(o) for o in operands]
        shapes = [shape for shape, _ in walked]
        total = Estimate(1)
        if function == "_?_:_" and len(walked) == 3:  # one branch runs: the dearer one
            _add(total, walked[0][1])
            dearer = max(walked[1][1], walked[2][1], key=lambda e: (e.cost, e.iterations))
            _add(total, dearer)
            return shapes[1] | shapes[2], total
        for _, cost in walked:
            _add(total, cost)
        shape, work = _call_shape(function, shapes, operands, self.accumulator)
        total.cost += work
        return shape, total

    def _comprehension(self, value: bytes) -> tuple[Shape, Estimate]:
        fields = _fields(value)
        iter_var, accu_var = _text(_one(fields, 1)), _text(_one(fields, 3))
        iter_range, range_total = self.walk(_one(fields, 2) or b"")
        init, init_total = self.walk(_one(fields, 4) or b"")
        rounds = iter_range.size
        element = (iter_range.key if iter_range.key is not None else iter_range.item) or SCALAR
        saved = dict(self.scope), self.accumulator
        self.scope[iter_var] = element
        self.scope[accu_var] = init
        self.accumulator = accu_var
        # Walked once (twice would double per nesting level): a macro's step costs the same
        # whatever the accumulator holds, as appending to it costs the element appended.
        step_shape, step = self.walk(_one(fields, 6) or b"")
        # Each round adds what one step adds to the accumulator: map and filter one element.
        grown = Shape(init.size + rounds * max(step_shape.size - init.size, 0),
                      _join(init.item, step_shape.item), _join(init.key, step_shape.key))
        self.scope[accu_var] = grown
        _, condition = self.walk(_one(fields, 5) or b"")
        result, result_total = self.walk(_one(fields, 7) or b"")
        self.scope, self.accumulator = saved
        total = Estimate(1)
        for part in (range_total, init_total, result_total):
            _add(total, part)
        total.cost += rounds * (1 + condition.cost + step.cost)
        total.iterations += rounds * (1 + condition.iterations + step.iterations)
        return result, total


def _call_shape(function: str, shapes: list[Shape], operands: list[bytes],
                accumulator: str | None) -> tuple[Shape, int]:
    """A call's result and the work it does beyond its operands'."""
    if function == "_+_" and len(shapes) == 2:
        a, b = shapes
        appends = accumulator is not None and _ident(operands[0]) == accumulator  # map, filter
        return Shape(a.size + b.size, _join(a.item, b.item), _join(a.key, b.key)), (
            b.elements if appends else a.elements + b.elements)
    if function in ("_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_") and len(shapes) == 2:
        return SCALAR, min(shapes[0].elements, shapes[1].elements)
    if function == "@in" and len(shapes) == 2:
        return SCALAR, shapes[1].elements
    if function == "_[_]" and shapes:
        return shapes[0].item or SCALAR, 1
    if function == "matches" and len(shapes) == 2:  # RE2: linear in the text; as the API server counts
        return SCALAR, -(-shapes[0].size // 10) * -(-max(shapes[1].size, 1) // 4)
    if function in ("contains", "startsWith", "endsWith") and len(shapes) == 2:
        return SCALAR, shapes[0].size + shapes[1].size
    if function in ("size", "_&&_", "_||_", "!_", "@not_strictly_false", "_-_", "_*_", "_/_", "_%_",
                    "-_", "int", "uint", "double", "bool", "type", "dyn"):
        return (shapes[0] if function == "dyn" and shapes else SCALAR), 1
    if function == "string" and shapes:
        return Shape(max(shapes[0].size, 32)), shapes[0].size + 1
    # Anything else: as large as its largest operand, and reading each operand whole.
    largest = SCALAR
    for shape in shapes:
        largest = largest | shape
    return largest, sum(s.elements for s in shapes)


def _ident(expr: bytes) -> str | None:
    content = _one(_fields(expr), 4)
    return None if content is None else _text(_one(_fields(content), 1))


def _add(total: Estimate, more: Estimate) -> None:
    total.cost += more.cost
    total.iterations += more.iterations


# --- protobuf's wire format, as much as a CheckedExpr needs --------------------------------------

def _fields(buffer: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs: an int for a varint, bytes for anything length-delimited."""
    return list(_iter_fields(buffer))


def _iter_fields(buffer: bytes) -> Iterator[tuple[int, Any]]:
    i = 0
    while i < len(buffer):
        key, i = _varint(buffer, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buffer, i)
        elif wire == 2:
            length, i = _varint(buffer, i)
            value, i = buffer[i:i + length], i + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, i = buffer[i:i + width], i + width
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        yield number, value


def _varint(buffer: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buffer[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _one(fields: list[tuple[int, Any]], number: int) -> Any:
    return next((value for n, value in fields if n == number), None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else ""
