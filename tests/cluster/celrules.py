"""`x-kubernetes-validations` (CEL) rules of a CRD, evaluated on create and update.

Rules that mention `oldSelf` are transition rules: they run only on updates, where the old value
exists. As in Kubernetes >= 1.30 (validation ratcheting), rules on unchanged values are skipped.
Rules using Kubernetes-only CEL extensions the `cel` package lacks (e.g. `isSorted()`, quantity)
are skipped and listed in `SKIPPED`, so the emulator never rejects what it cannot judge; a
missing key, as in the real server, fails the rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

try:
    import cel as _cel
except ImportError:  # the emulator still works, without CEL rules
    _cel = None

Step = tuple[str, ...]  # ("prop", name) | ("items", *list-map keys) | ("map",)
SKIPPED: set[str] = set()  # rules the library could not evaluate, for test authors to inspect


@dataclass(eq=False)
class Rule:
    path: tuple[Step, ...]
    rule: str
    message: str
    reason: str
    field_path: str
    program: Any
    message_program: Any = None
    reads: dict[str, Any] | None = None  # see _reads()
    memo: dict[tuple, tuple[bool | str, list]] = field(default_factory=dict)  # see _evaluate()

    @property
    def transition(self) -> bool:
        return "oldSelf" in self.rule


def collect_rules(schema: dict[str, Any], path: tuple[Step, ...] = ()) -> list[Rule]:
    """Every rule in the schema, with the path of the node it is attached to."""
    if _cel is None or not isinstance(schema, dict):
        return []
    rules = []
    for spec in schema.get("x-kubernetes-validations") or ():
        try:
            program = _cel.compile(spec["rule"])
        except ValueError:
            SKIPPED.add(spec["rule"])
            continue
        rules.append(Rule(path, spec["rule"], spec.get("message", ""),
                          spec.get("reason", "FieldValueInvalid"), spec.get("fieldPath", ""),
                          program, _compile(spec.get("messageExpression")),
                          _reads(spec["rule"])))
    for name, sub in (schema.get("properties") or {}).items():
        rules += collect_rules(sub, (*path, ("prop", name)))
    if isinstance(schema.get("items"), dict):
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ()) \
            if schema.get("x-kubernetes-list-type") == "map" else ()
        rules += collect_rules(schema["items"], (*path, ("items", *keys)))
    if isinstance(schema.get("additionalProperties"), dict):
        rules += collect_rules(schema["additionalProperties"], (*path, ("map",)))
    return rules


def _compile(expression: str | None) -> Any:
    if not expression or _cel is None:
        return None
    try:
        return _cel.compile(expression)
    except ValueError:
        return None


def _message(rule: Rule, value: Any) -> str:
    """messageExpression if it evaluates to a string, else message, else the rule itself."""
    if rule.message_program is not None:
        try:
            text = rule.message_program.execute({"self": value})
            if isinstance(text, str) and text:
                return text
        except (KeyError, RuntimeError, ValueError, TypeError):
            pass
    return rule.message or f"failed rule: {rule.rule}"


_ABSENT = object()
FULL = "full"
# self.a.b as a member chain; a segment followed by "(" is a method call and ends the chain.
_CHAIN = re.compile(r"(?<![\w.])(self|oldSelf)((?:\.(?![A-Za-z_]\w*\s*\()[A-Za-z_]\w*)*)")


def _reads(rule: str) -> dict[str, Any]:
    """Which parts of self/oldSelf a rule can read: {var: FULL | {key: tree}}; an empty tree
    means only the key's presence matters (`has(...)`).

    Handing the CEL library only these parts matters: converting a whole 1,000-step Workflow
    into CEL values takes tens of milliseconds, and the root rule runs on every status write.
    Anything not a plain member chain (indexing, `.?`, method calls) keeps the whole prefix.
    """
    trees: dict[str, Any] = {"self": {}, "oldSelf": {}}
    for match in _CHAIN.finditer(rule):
        variable, chain = match[1], [p for p in match[2].split(".") if p]
        presence = rule[: match.start()].rstrip().endswith("has(") and \
            rule[match.end():].lstrip().startswith(")")
        if not chain:
            trees[variable] = FULL
            continue
        node = trees[variable]
        for key in chain[:-1]:
            if node == FULL:
                break
            node = node.setdefault(key, {})
        else:
            if node != FULL and not presence:
                node[chain[-1]] = FULL
            elif node != FULL:
                node.setdefault(chain[-1], {})
    return trees


def _project(value: Any, tree: Any) -> Any:
    if tree == FULL or not isinstance(value, dict):
        return value
    return {key: _project(value[key], sub) for key, sub in tree.items() if key in value}


def _correlate(item: Any, old: Any, keys: tuple[str, ...]) -> Any:
    """The old element of a list-type=map list with the same keys, as the API server pairs them."""
    if not keys or not isinstance(old, list) or not isinstance(item, dict):
        return _ABSENT
    wanted = tuple(item.get(k) for k in keys)
    for candidate in old:
        if isinstance(candidate, dict) and tuple(candidate.get(k) for k in keys) == wanted:
            return candidate
    return _ABSENT


def _walk(value: Any, old: Any, path: tuple[Step, ...], field: str) -> Iterator[tuple]:
    """Yield (value, old value or _ABSENT, field path) for every changed node the path reaches;
    unchanged subtrees are skipped (ratcheting)."""
    if old is not _ABSENT and value == old:
        return
    if not path:
        yield value, old, field
        return
    step, rest = path[0], path[1:]
    if step[0] == "prop" and isinstance(value, dict) and step[1] in value:
        old_child = old.get(step[1], _ABSENT) if isinstance(old, dict) else _ABSENT
        yield from _walk(value[step[1]], old_child, rest, f"{field}.{step[1]}".lstrip("."))
    elif step[0] == "items" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, _correlate(item, old, step[1:]), rest, f"{field}[{i}]")
    elif step[0] == "map" and isinstance(value, dict):
        for key, item in value.items():
            old_child = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
            yield from _walk(item, old_child, rest, f"{field}[{key}]")


def _leaves(value: Any, tree: Any, path: tuple[str, ...], out: list) -> None:
    """What a rule reads, flattened: containers by identity, scalars by value."""
    if tree == FULL or not isinstance(value, dict):
        out.append((path, id(value) if isinstance(value, dict | list) else value))
        out.append(value)  # holds the container, so that its id stays unique while memoised
        return
    out.extend(((path, "{}"), None))
    for key, sub in tree.items():
        if key in value:
            _leaves(value[key], sub, (*path, key), out)


def _evaluate(rule: Rule, value: Any, old: Any) -> bool | str:
    """Evaluate with only what the rule reads. Stored objects are never mutated and unchanged
    branches are shared between versions, so the same containers mean the same verdict:
    the root rule of a Workflow is not re-run over the whole spec on every status write."""
    reads = rule.reads or {"self": FULL, "oldSelf": FULL}
    parts: list = []
    _leaves(value, reads["self"], ("self",), parts)
    if old is not _ABSENT:
        _leaves(old, reads["oldSelf"], ("oldSelf",), parts)
    key = tuple(parts[0::2])
    if key in rule.memo:
        return rule.memo[key][0]
    context = {"self": _project(value, reads["self"])}
    if old is not _ABSENT:
        context["oldSelf"] = _project(old, reads["oldSelf"])
    try:
        verdict: bool | str = bool(rule.program.execute(context))
    except KeyError as e:
        verdict = f"no such key: {e.args[0]}"
    except (RuntimeError, ValueError, TypeError):
        SKIPPED.add(rule.rule)
        verdict = True
    if len(rule.memo) > 256:
        rule.memo.clear()
    rule.memo[key] = (verdict, parts[1::2])
    return verdict


def check_rules(rules: list[Rule], obj: dict[str, Any], old: dict[str, Any] | None) -> list:
    causes = []
    for rule in rules:
        for value, old_value, where in _walk(obj, old if old is not None else _ABSENT,
                                             rule.path, ""):
            if rule.transition and old_value is _ABSENT:
                continue
            verdict = _evaluate(rule, value, old_value)
            if verdict is not True:
                message = _message(rule, value)
                if isinstance(verdict, str):
                    message = f"{message} (evaluation error: {verdict})"
                causes.append({"reason": rule.reason, "message": f"Invalid value: {message}",
                               "field": f"{where}{rule.field_path}".lstrip(".")})
    return causes
