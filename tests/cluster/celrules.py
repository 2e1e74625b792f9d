"""`x-kubernetes-validations` (CEL) rules of a CRD, evaluated on create and update.

Rules that mention `oldSelf` are transition rules: they run only on updates, where the old value
exists. As in Kubernetes >= 1.30 (validation ratcheting), rules on unchanged values are skipped.
Rules using Kubernetes-only CEL extensions the `cel` package lacks (e.g. `isSorted()`, quantity)
are skipped and listed in `SKIPPED`, so the emulator never rejects what it cannot judge; a
missing key, as in the real server, fails the rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

try:
    import cel as _cel
except ImportError:  # the emulator still works, without CEL rules
    _cel = None

Step = tuple[str, ...]  # ("prop", name) | ("items",) | ("map",)
SKIPPED: set[str] = set()  # rules the library could not evaluate, for test authors to inspect


@dataclass(frozen=True)
class Rule:
    path: tuple[Step, ...]
    rule: str
    message: str
    reason: str
    field_path: str
    program: Any
    message_program: Any = None

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
                          program, _compile(spec.get("messageExpression"))))
    for name, sub in (schema.get("properties") or {}).items():
        rules += collect_rules(sub, (*path, ("prop", name)))
    if isinstance(schema.get("items"), dict):
        rules += collect_rules(schema["items"], (*path, ("items",)))
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


def _walk(value: Any, old: Any, path: tuple[Step, ...], field: str) -> Iterator[tuple]:
    """Yield (value, old value or _ABSENT, field path) for every node the path reaches."""
    if not path:
        yield value, old, field
        return
    step, rest = path[0], path[1:]
    if step[0] == "prop" and isinstance(value, dict) and step[1] in value:
        old_child = old.get(step[1], _ABSENT) if isinstance(old, dict) else _ABSENT
        yield from _walk(value[step[1]], old_child, rest, f"{field}.{step[1]}".lstrip("."))
    elif step[0] == "items" and isinstance(value, list):
        for i, item in enumerate(value):  # list items are not correlated with old ones
            yield from _walk(item, _ABSENT, rest, f"{field}[{i}]")
    elif step[0] == "map" and isinstance(value, dict):
        for key, item in value.items():
            old_child = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
            yield from _walk(item, old_child, rest, f"{field}[{key}]")


def _evaluate(rule: Rule, value: Any, old: Any) -> bool | str:
    context = {"self": value} if old is _ABSENT else {"self": value, "oldSelf": old}
    try:
        return bool(rule.program.execute(context))
    except KeyError as e:
        return f"no such key: {e.args[0]}"
    except (RuntimeError, ValueError, TypeError):
        SKIPPED.add(rule.rule)
        return True


def check_rules(rules: list[Rule], obj: dict[str, Any], old: dict[str, Any] | None) -> list:
    causes = []
    for rule in rules:
        for value, old_value, field in _walk(obj, old if old is not None else _ABSENT,
                                             rule.path, ""):
            if (rule.transition and old_value is _ABSENT) or value == old_value:
                continue
            verdict = _evaluate(rule, value, old_value)
            if verdict is not True:
                message = _message(rule, value)
                if isinstance(verdict, str):
                    message = f"{message} (evaluation error: {verdict})"
                causes.append({"reason": rule.reason, "message": f"Invalid value: {message}",
                               "field": f"{field}{rule.field_path}".lstrip(".")})
    return causes
