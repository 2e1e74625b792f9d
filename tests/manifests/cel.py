"""Run the CRD's ``x-kubernetes-validations`` rules the way the API server does, offline.

Kubernetes evaluates each rule with ``self`` bound to the value at the rule's schema node (for a
rule on a list's ``items``: each element), ``oldSelf`` to the previous value on updates
(transition rules are skipped on create), after defaults are applied. The ``cel`` package
(common-expression-language) lacks Kubernetes' CEL libraries, so the few functions the CRD uses
are supplied here with the same meaning: ``isSorted``, ``indexOf``, ``lastIndexOf`` (lists),
``join`` and ``substring`` (strings). One known difference: Kubernetes compares
``x-kubernetes-list-type: map``/``set`` lists without regard to order; the ``cel`` package
compares them in order.

The second half reads rules statically: which arrays and strings of the schema a rule walks or
compares (for the maxItems/maxLength check), and a rough worst-case cost.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import cel

from manifests.schema import apply_defaults, crd_schema


def _is_sorted(items: list) -> bool:
    return all(a <= b for a, b in itertools.pairwise(items))


def _index_of(target: Any, item: Any) -> int:
    if isinstance(target, str):
        return target.find(item)
    return target.index(item) if item in target else -1


def _last_index_of(target: Any, item: Any) -> int:
    if isinstance(target, str):
        return target.rfind(item)
    return len(target) - 1 - target[::-1].index(item) if item in target else -1


def _join(items: list, sep: str = "") -> str:
    return sep.join(items)


def _substring(text: str, start: int, end: int | None = None) -> str:
    if start < 0 or start > len(text) or (end is not None and not start <= end <= len(text)):
        raise ValueError(f"substring({start}, {end}) out of range for a string of {len(text)}")
    return text[start:end]


@cache
def compiled(text: str) -> Any:
    return cel.compile(text)


LIBRARY = {
    "isSorted": _is_sorted,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "join": _join,
    "substring": _substring,
}


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]  # property names; "[]" for list items, "{}" for map values
    node: dict[str, Any]  # the schema node the rule is attached to
    rule: str
    message: str
    message_expression: str | None
    index: int  # position in the node's x-kubernetes-validations

    @property
    def transition(self) -> bool:
        return re.search(r"\boldSelf\b", self.rule) is not None

    @property
    def key(self) -> str:
        """A stable, readable id: the path and the start of the static message."""
        return f"{'.'.join(self.path) or '<root>'}: {self.message[:40]}"

    def evaluate(self, value: Any, old: Any = None) -> bool:
        context = {"self": value, **LIBRARY}
        if self.transition:
            context["oldSelf"] = old
        return compiled(self.rule).execute(context) is True

    def render_message(self, value: Any) -> str:
        if self.message_expression:
            try:
                return str(compiled(self.message_expression).execute({"self": value, **LIBRARY}))
            except Exception:  # as in Kubernetes: fall back to the static message
                pass
        return self.message


def collect_rules(schema: dict[str, Any] | None = None) -> list[Rule]:
    schema = schema if schema is not None else crd_schema()
    rules: list[Rule] = []

    def walk(node: dict[str, Any], path: tuple[str, ...]) -> None:
        for i, spec in enumerate(node.get("x-kubernetes-validations") or ()):
            rules.append(Rule(path, node, spec["rule"], spec.get("message", ""),
                              spec.get("messageExpression"), i))
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, (*path, name))
        if isinstance(node.get("items"), dict):
            walk(node["items"], (*path, "[]"))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], (*path, "{}"))

    walk(schema, ())
    return rules


def values_at(path: tuple[str, ...], value: Any, old: Any = None) -> Iterator[tuple[str, Any, Any]]:
    """(field path, value, old value) for every place ``path`` reaches in an object.

    Old values are correlated the way Kubernetes does it: by property name, by key for maps,
    and by the map keys of ``x-kubernetes-list-type: map`` lists (here: the step ``name``).
    """
    if not path:
        yield "", value, old
        return
    head, rest = path[0], path[1:]
    if head == "[]":
        if not isinstance(value, list):
            return
        old_by_name = {o.get("name"): o for o in old or () if isinstance(o, dict)}
        for i, item in enumerate(value):
            before = old_by_name.get(item.get("name")) if isinstance(item, dict) else None
            for field, v, o in values_at(rest, item, before):
                yield f"[{i}]{field}", v, o
    elif head == "{}":
        if not isinstance(value, dict):
            return
        for key, item in value.items():
            for field, v, o in values_at(rest, item, (old or {}).get(key)):
                yield f"[{key}]{field}", v, o
    elif isinstance(value, dict) and head in value:
        before = old.get(head) if isinstance(old, dict) else None
        for field, v, o in values_at(rest, value[head], before):
            yield f".{head}{field}", v, o


def check(obj: dict[str, Any], old: dict[str, Any] | None = None,
          rules: list[Rule] | None = None) -> list[str]:
    """Messages of every rule the object breaks: a create when ``old`` is None, else an update."""
    schema = crd_schema()
    obj = apply_defaults(schema, obj)
    old = apply_defaults(schema, old) if old is not None else None
    errors = []
    for rule in rules if rules is not None else collect_rules(schema):
        for field, value, before in values_at(rule.path, obj, old):
            if rule.transition and before is None:
                continue  # transition rules run only where an old value exists
            try:
                ok = rule.evaluate(value, before)
            except Exception as exc:  # an evaluation error rejects the object, too
                errors.append(f"{field or '<root>'}: error evaluating rule: {exc}")
                continue
            if not ok:
                errors.append(f"{field or '<root>'}: {rule.render_message(value)}")
    return errors


# --- static reading of rules -----------------------------------------------------------------

MACROS = ("all", "exists", "exists_one", "map", "filter")
LIST_WALKERS = ("isSorted", "indexOf", "lastIndexOf", "join", "min", "max", "sum")
STRING_WALKERS = ("matches", "startsWith", "endsWith", "contains", "substring", "find",
                  "findAll", "split", "lowerAscii", "upperAscii", "trim", "replace")
MAX_ESTIMATED_COST = 10_000_000  # Kubernetes' limit per expression (StaticEstimatedCostLimit)
MACRO_ITERATION_COST = 8  # a loop step plus a small body: a handful of operations of cost ~1
DERIVED_STRING = {"type": "string", "maxLength": 0, "description": "built by join()"}


def expressions(rule: Rule) -> list[str]:
    """The CEL texts of a rule that Kubernetes compiles and prices: rule and messageExpression."""
    return [rule.rule] + ([rule.message_expression] if rule.message_expression else [])


def _close(text: str, open_at: int) -> int:
    """Index of the bracket that closes the one at ``open_at`` (quotes respected)."""
    depth, quote = 0, None
    for i in range(open_at, len(text)):
        ch = text[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced brackets in {text!r}")


def _open(text: str, close_at: int) -> int:
    """Index of the bracket that opens the one closing at ``close_at``."""
    return next(i for i in range(close_at, -1, -1)
                if text[i] in "([{" and _close(text, i) == close_at)


def _is_literal_list(expr: str) -> bool:
    return expr.startswith("[") and _close(expr, 0) == len(expr) - 1


def _mask_strings(text: str) -> str:
    """``text`` with the inside of every string literal blanked out (same length)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: m.group(0)[0] + "_" * (len(m.group(0)) - 2)
                  + m.group(0)[0], text)


def _receiver(text: str, dot: int) -> str:
    """The expression that the method call at ``text[dot] == '.'`` is called on."""
    i = dot
    while i > 0:
        ch = text[i - 1]
        if ch.isspace() and text[i] == ".":  # a chain broken over lines: "x.filter(...)\n.map(...)"
            i -= 1
        elif ch in ")]":
            i = _open(text, i - 1)
        elif ch.isalnum() or ch in "_.":
            i -= 1
        else:
            break
    return text[i:dot].strip()


@dataclass
class Call:
    name: str  # macro or function name
    receiver: str
    start: int  # index of its "("
    end: int  # index of its ")"
    var: str | None  # the loop variable of a macro


def calls(text: str) -> list[Call]:
    text = _mask_strings(text)
    found = []
    for m in re.finditer(r"\.(\w+)\(", text):
        name, open_at = m.group(1), m.end() - 1
        var_match = re.match(r"\s*(\w+)\s*,", text[open_at + 1:]) if name in MACROS else None
        found.append(Call(name, _receiver(text, m.start()), open_at, _close(text, open_at),
                          var_match.group(1) if var_match else None))
    return found


class Resolver:
    """Maps the expressions of one CEL text to the schema nodes they read.

    Derived lists (``x.map(...)``, ``x.filter(...)``) count as their source list: they are no
    longer than it. ``[expr]`` is a one-element list, used to bind ``expr`` to a macro variable.
    """

    def __init__(self, node: dict[str, Any], text: str) -> None:
        self.vars: dict[str, dict[str, Any] | None] = {"self": node, "oldSelf": node}
        for call in calls(text):
            if call.var:
                source = self.resolve(call.receiver)
                self.vars[call.var] = (source if _is_literal_list(call.receiver)
                                       else (source or {}).get("items"))

    def resolve(self, expr: str) -> dict[str, Any] | None:
        expr = expr.strip()
        if _is_literal_list(expr):
            return self.resolve(expr[1:-1])
        if expr.endswith(")"):
            open_at = _open(expr, len(expr) - 1)
            head = re.search(r"\.(\w+)$", expr[:open_at])
            if head and head.group(1) in ("map", "filter"):
                return self.resolve(expr[: head.start()])
            if head and head.group(1) == "join":
                return DERIVED_STRING
            return None
        parts = expr.split(".")
        node = self.vars.get(parts[0])
        for name in parts[1:]:
            node = (node.get("properties") or {}).get(name) if node else None
        return node


def _bounded(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "array":
        return "maxItems" in node
    if kind == "string":
        return "maxLength" in node or "enum" in node
    return True


def _subtree(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for sub in (node.get("properties") or {}).values():
        yield from _subtree(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _subtree(node[key])


_PATH = r"(?:self|oldSelf|[a-z]\w*)(?:\.\w+)*"


def unbounded_walks(node: dict[str, Any], text: str) -> list[str]:
    """Expressions in ``text`` that walk or compare an array or string with no size limit."""
    resolver = Resolver(node, text)
    problems = []

    def need(expr: str, deep: bool = False) -> None:
        target = resolver.resolve(expr)
        if target is None:
            problems.append(f"{expr}: cannot tell which schema node this is")
            return
        for sub in _subtree(target) if deep else (target,):
            if not _bounded(sub):
                problems.append(f"{expr}: {sub.get('type')} without maxItems/maxLength")

    for call in calls(text):
        walks = call.name in MACROS + LIST_WALKERS + STRING_WALKERS
        if walks and not call.receiver.startswith("'") and not _is_literal_list(call.receiver):
            need(call.receiver)
    text = _mask_strings(text)
    for m in re.finditer(rf"({_PATH})\s*(==|!=)\s*({_PATH})", text):
        need(m.group(1), deep=True)
        need(m.group(2 + 1), deep=True)
    for m in re.finditer(rf"({_PATH})\s+in\s+({_PATH}|\[)", text):
        need(m.group(1))
        if m.group(2) != "[":
            need(m.group(2))
    return problems


def rough_cost(node: dict[str, Any], text: str) -> int:
    """A rough worst case of ``text``: each walk costs its length times the loops it sits in.

    Not Kubernetes' estimator, but the same shape (lengths from maxItems/maxLength, a loop's
    body multiplied by its length), so a rule nesting loops over long lists shows up here.
    """
    resolver = Resolver(node, text)
    found = calls(text)

    def length(call: Call) -> int:
        if _is_literal_list(call.receiver):
            return 1
        target = resolver.resolve(call.receiver) or {}
        return int(target.get("maxItems") or 1)

    walks = []  # (position, cost of one walk)
    for call in found:
        if call.name in MACROS:
            walks.append((call.start, length(call) * MACRO_ITERATION_COST))
        elif call.name in LIST_WALKERS:
            walks.append((call.start, length(call)))
    masked = _mask_strings(text)
    for m in re.finditer(rf"\sin\s+({_PATH})", masked):
        walks.append((m.start(), int((resolver.resolve(m.group(1)) or {}).get("maxItems") or 1)))
    total = 0
    for position, cost in walks:
        for outer in found:
            if outer.name in MACROS and outer.start < position < outer.end:
                cost *= length(outer)
        total += cost
    return total
