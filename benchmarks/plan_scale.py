"""How validation + planning time grows with the number of steps.

Measures ``compile_workflow`` (field validation, G6/D2 checks, cycle check,
grouping) on the document as a dict, YAML parsing of the same document on
its own, and one engine ``decide()`` call, for 100, 1,000 and 10,000 steps in
three shapes. DESIGN target: planning + validation of 10,000 steps < 0.5 s.

    .venv/bin/python benchmarks/plan_scale.py [--repeat N] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

import figures
from stepflow.engine import decide
from stepflow.plan import compile_workflow
from stepflow.spec import iter_documents

SIZES = (100, 1_000, 10_000)
TARGET_SECONDS = 0.5  # DESIGN.md: planning + validation of a 10,000-step workflow


def chain(n: int) -> list[dict[str, Any]]:
    """n sequential steps: n groups of one, each waiting for the one before."""
    return [{"name": f"step-{i}", "script": "true"} for i in range(n)]


def wide(n: int) -> list[dict[str, Any]]:
    """Ten numbered groups of n/10 parallel steps each."""
    width = max(n // 10, 1)
    return [{"name": f"step-{i}", "parallelGroup": i // width + 1, "script": "true"} for i in range(n)]


def random_dag(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Each step depends on 0-3 random earlier steps (fixed seed: the same DAG every run)."""
    rng = random.Random(seed)
    steps = []
    for i in range(n):
        deps = sorted({f"step-{rng.randrange(i)}" for _ in range(rng.randint(0, 3))}) if i else []
        steps.append({"name": f"step-{i}", "dependsOn": deps, "script": "true"})
    return steps


SHAPES: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "chain": chain,
    "wide groups": wide,
    "random DAG": random_dag,
}


def document(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bench"},
        "spec": {"maxConcurrency": 50, "steps": steps},
    }


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    """Minimum wall time of ``repeat`` calls: the least disturbed by other load on the machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(repeat: int) -> list[dict[str, Any]]:
    rows = []
    for shape, build in SHAPES.items():
        for n in SIZES:
            doc = document(build(n))
            text = yaml.safe_dump(doc, sort_keys=False)
            plan = compile_workflow(doc)
            rows.append(
                {
                    "shape": shape,
                    "steps": n,
                    "groups": len(plan.groups),
                    "plan_seconds": best_of(repeat, lambda doc=doc: compile_workflow(doc)),
                    "yaml_seconds": best_of(repeat, lambda text=text: list(iter_documents(text))),
                    "decide_seconds": best_of(
                        repeat, lambda plan=plan: decide(plan, {}, now=0, started_at=0)
                    ),
                    "cli_seconds": from_the_file(text),
                }
            )
    return rows


def from_the_file(text: str) -> float:
    """``stepflow plan FILE -o json`` as users run it: a process, its imports, the file."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        file.write(text)
        file.flush()
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).with_name("stepflow")), "plan", file.name, "-o", "json"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def growth(rows: list[dict[str, Any]], shape: str, key: str = "plan_seconds") -> float:
    by_size = {r["steps"]: r[key] for r in rows if r["shape"] == shape}
    return by_size[10_000] / by_size[1_000]


def report(rows: list[dict[str, Any]], console: figures.Report) -> dict[str, Any]:
    table = Table(
        title=f"validate + plan (compile_workflow), best of runs; target < {TARGET_SECONDS} s at 10,000 steps"
    )
    for column in (
        "shape",
        "steps",
        "groups",
        "validate+plan",
        "YAML parse",
        "decide() once",
        "plan FILE -o json",
        "growth 10k/1k",
        "< 0.5 s",
    ):
        table.add_column(column, justify="left" if column == "shape" else "right")
    summary = {}
    for shape in SHAPES:
        ratio = growth(rows, shape)
        for r in (r for r in rows if r["shape"] == shape):
            last = r["steps"] == 10_000
            verdict = ""
            if last:
                ok = r["plan_seconds"] < TARGET_SECONDS
                verdict = "[green]met[/green]" if ok else "[red]missed[/red]"
                summary[shape] = {"seconds_10k": r["plan_seconds"], "growth_10k_over_1k": ratio, "met": ok}
            table.add_row(
                shape if r["steps"] == SIZES[0] else "",
                f"{r['steps']:,}",
                f"{r['groups']:,}",
                f"{r['plan_seconds'] * 1000:.1f} ms",
                f"{r['yaml_seconds'] * 1000:.1f} ms",
                f"{r['decide_seconds'] * 1000:.1f} ms",
                f"{r['cli_seconds'] * 1000:.0f} ms",
                f"{ratio:.1f}x" if last else "",
                verdict,
                end_section=last,
            )
    console.print(table)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    args = parser.parse_args()
    console = figures.Report(Console(width=max(Console().width, 120)))
    rows = measure(args.repeat)
    summary = report(rows, console)
    loader = "libyaml" if hasattr(yaml, "CSafeLoader") else "pure-Python"
    console.print(
        f"python {platform.python_version()}, {loader} YAML parser. 'validate+plan' starts from "
        "the dict document; `stepflow validate FILE` also pays 'YAML parse'. Growth ~10x = linear."
    )
    console.write(args.markdown)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "benchmark": "plan_scale",
                    "target_seconds_10k": TARGET_SECONDS,
                    "repeat": args.repeat,
                    "python": platform.python_version(),
                    "rows": rows,
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
