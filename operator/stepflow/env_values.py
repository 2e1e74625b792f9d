"""Environment values the way Kubernetes treats them, shared by both executors.

The kubelet expands ``$(NAME)`` in ``command``, ``args`` and env values; the local runner does
the same through :func:`expand_references`, so a workflow means one thing on both. Every value
stepflow passes in from outside the workflow's text (an output, a param, a matrix value) goes
through :func:`literal` first, so that it arrives exactly as given (O3, T3).
"""

from __future__ import annotations

from collections.abc import Mapping


def literal(value: str) -> str:
    """The env ``value`` that Kubernetes' expansion turns back into ``value`` itself: every
    ``$`` doubled, so neither ``$(NAME)`` nor ``$$`` inside it is ever expanded."""
    return value.replace("$", "$$")


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of ``command``, ``args`` and env values: ``$(NAME)`` becomes the
    declared variable's value, ``$$`` a literal ``$``, and a reference to an undeclared name
    stays as written (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    if "$" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)
