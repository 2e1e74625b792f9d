"""Environment values the way Kubernetes treats them, shared by both executors and validation.

The kubelet expands ``$(NAME)`` in ``command``, ``args`` and env values; the local runner does
the same through :func:`expand_references`, so a workflow means one thing on both. Both build the
container's env list with :func:`container_env`, so its order (which decides what a ``$(NAME)``
in a value can see) is the same too. Every value stepflow passes in from outside the workflow's
text (an output, a param, a matrix value) goes through :func:`literal` first, so that it arrives
exactly as given (O3, T3); :func:`carriers` finds the variables whose value would hold an output
once expanded, so that validation refuses any ``$(NAME)`` that would paste one into a command.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

OUTPUTS_VARIABLE = "STEPFLOW_OUTPUTS"


def literal(value: str) -> str:
    """The env ``value`` that Kubernetes' expansion turns back into ``value`` itself: every
    ``$`` doubled, so neither ``$(NAME)`` nor ``$$`` inside it is ever expanded."""
    return value.replace("$", "$$")


def _pieces(text: str) -> Iterator[tuple[str, bool]]:
    """``text`` cut as Kubernetes' expansion reads it (k8s.io/kubernetes
    third_party/forked/golang/expansion): (text, False) for what is copied, ``$$`` giving ``$``,
    and (name, True) for each ``$(name)`` it looks up. A ``$`` at the end, a ``$`` before any
    other character and an unclosed ``$(`` are copied as they are."""
    start, i, end = 0, 0, len(text)
    while i < end:
        i = text.find("$", i)
        if i < 0 or i + 1 >= end:
            break
        if i > start:
            yield text[start:i], False
        following = text[i + 1]
        if following == "$":
            yield "$", False
            i += 2
        elif following == "(" and (close := text.find(")", i + 2)) != -1:
            yield text[i + 2:close], True
            i = close + 1
        else:
            yield "$", False  # the following character is copied with the rest
            i += 1
        start = i
    if start < end:
        yield text[start:], False


def references(text: str) -> list[str]:
    """The names Kubernetes' expansion looks up in ``text``, in order; ``$$(X)`` has none."""
    return [piece for piece, is_name in _pieces(text) if is_name] if "$" in text else []


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of ``command``, ``args`` and env values: ``$(NAME)`` becomes the
    declared variable's value, ``$$`` a literal ``$``, and a reference to an undeclared name
    stays as written. One pass: a value put in is never expanded again."""
    if "$" not in text:
        return text
    return "".join(env.get(piece, f"$({piece})") if is_name else piece for piece, is_name in _pieces(text))


def container_env(params: Mapping[str, str], outputs_path: str, *env_lists: Iterable[Mapping[str, Any]],
                  outputs: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The step container's ``env`` list, as both executors declare it: the params first (T3),
    literal, so that a ``$(NAME)`` below may use them; ``STEPFLOW_OUTPUTS``; then the entries of
    ``env_lists`` (the defaults', then the step's) merged by name, a later entry taking an
    earlier one's value and keeping its place, except a param's: the step gave it, and the step
    wins over the defaults (T2; its own env may not name a param at all). ``outputs`` gives the values of the
    ``stepOutput`` variables, resolved when the step starts: each becomes a literal value (O3);
    without them, those entries stay as written (validation)."""
    env = {name: {"name": name, "value": literal(value)} for name, value in params.items()}
    env[OUTPUTS_VARIABLE] = {"name": OUTPUTS_VARIABLE, "value": outputs_path}
    for entries in env_lists:
        for var in entries:
            if var["name"] not in params:
                env[var["name"]] = dict(var)
    for name, value in (outputs or {}).items():
        env[name] = {"name": name, "value": literal(value)}
    return list(env.values())


def resolve_env(env: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The values the kubelet gives a container's ``env`` list: each plain value expanded with
    the variables declared before it. Other sources (``valueFrom``) are left out; an entry with
    neither is ``""``, as in a container."""
    values: dict[str, str] = {}
    for var in env:
        if "valueFrom" not in var:
            values[var["name"]] = expand_references(var.get("value") or "", values)
    return values


def carriers(env: Iterable[Mapping[str, Any]], sources: Iterable[str]) -> dict[str, list[str]]:
    """The variables of a container's ``env`` list whose value holds one of ``sources``' once
    the kubelet has expanded it: each source, and each variable whose value refers to a carrier
    declared before it (``MSG: "PR: $(TITLE)"``). Each maps to the chain that leads to it from
    a source (``["TITLE", "MSG"]``)."""
    found = {name: [name] for name in sources}
    declared: set[str] = set()
    for var in env:
        name = var["name"]
        if name not in found and "valueFrom" not in var:
            refs = references(var.get("value") or "")
            via = next((ref for ref in refs if ref in declared and ref in found), None)
            if via is not None:
                found[name] = [*found[via], name]
        declared.add(name)
    return found
