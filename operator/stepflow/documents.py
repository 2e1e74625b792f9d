"""Reading the YAML documents of a file: strictly (no duplicate keys) and within bounds (size,
alias expansion), since the files are unreviewed input. Problems are raised as SpecError."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from stepflow.field_checks import FieldError, SpecError, excerpt


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader when present (3-4x faster on a 10,000-step file), refusing
    duplicate keys: YAML's last-one-wins would drop a whole ``steps`` list without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {excerpt(key_node.value)}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # a 10,000-step workflow is about 1 MiB
MAX_EXPANDED_VALUES = 1_000_000  # what a document may grow to through YAML aliases


def expanded_size(value: Any, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values ``value`` holds once every alias is expanded, counted without expanding:
    an alias is one shared object, so sizes are memoised by identity. Stops past ``limit``."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        children = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1
        for key, child in children:
            total += size(key) + size(child) if isinstance(node, dict) else size(child)
            if total > limit:
                break
        sizes[id(node)] = total
        return total

    return size(value)


def iter_documents(text: str) -> Iterator[Any]:
    """Yield the YAML documents of a file, turning parser errors into SpecError.

    Files are unreviewed input (``validate`` runs in CI on pull requests): a size limit and a
    bound on alias expansion keep a 500-byte "billion laughs" file from taking minutes and GBs.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise SpecError([FieldError("(file)", f"is {len(text):,} bytes; at most {MAX_DOCUMENT_BYTES:,} "
                                              "are read")])
    try:
        for doc in yaml.load_all(text, Loader=_StrictLoader):
            if doc is None:
                continue
            if expanded_size(doc) > MAX_EXPANDED_VALUES:
                raise SpecError([FieldError("(document)", f"expands to more than {MAX_EXPANDED_VALUES:,} "
                                                          "values through YAML aliases")])
            yield doc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([FieldError(where, f"malformed YAML: {problem}")]) from None


def read_documents(path: str | Path) -> list[Any]:
    """Read the YAML documents of a file; unreadable or malformed files raise SpecError."""
    try:
        # "-" is standard input, as for kubectl apply -f -
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([FieldError("(file)", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError:
        raise SpecError([FieldError("(file)", "is not UTF-8 text")]) from None
    docs = list(iter_documents(text))
    if not docs:
        raise SpecError([FieldError("(file)", "contains no Workflow document")])
    return docs
