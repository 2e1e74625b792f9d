"""The controller runtime knows nothing of workflows: it imports nothing of stepflow outside
itself, nor kopf (what is watched is the handlers' business)."""

from __future__ import annotations

import ast
from pathlib import Path

import stepflow.operator.runtime as runtime

PACKAGE = Path(runtime.__file__).parent


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_runtime_imports_nothing_of_stepflow_but_itself_and_not_kopf():
    modules = sorted(PACKAGE.glob("*.py"))
    assert {m.stem for m in modules} >= {"api", "cache", "controller", "events", "leader", "workqueue"}
    for module in modules:
        outside = {name for name in imported(module)
                   if (name.startswith("stepflow") and not name.startswith("stepflow.operator.runtime"))
                   or name.split(".")[0] == "kopf"}
        assert not outside, f"{module.name} imports {sorted(outside)}"
