"""How the local runner's time per step grows with the length of a chain of `true` steps.

Each step is a real process (`sh -c true`), so the floor is fork/exec and reaping; what grows
with the chain is the scheduler's work per step. The acceptance in the hardening issue: 2k/1k
time <= 2.3x, and a 10,000-step chain within 4x the 1,000-step time per step.

    .venv/bin/python benchmarks/local_chain.py [--sizes 1000,2000,10000] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import figures
from stepflow.engine import decide
from stepflow.local import LocalRun
from stepflow.plan import compile_workflow


def chain(n: int) -> dict[str, Any]:
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": f"chain-{n}"},
        "spec": {"steps": [{"name": f"s{i:05d}", "script": "true"} for i in range(n)]},
    }


def run_chain(n: int) -> dict[str, Any]:
    plan = compile_workflow(chain(n))
    with tempfile.TemporaryDirectory() as logs:
        run = LocalRun(plan, log_dir=Path(logs))
        started = time.perf_counter()
        decision = asyncio.run(run.run())
        wall = time.perf_counter() - started
    assert decision.phase == "Succeeded", decision.message
    fresh = {s.name: run.states[s.name] for s in plan.steps}
    decide_started = time.perf_counter()
    decide(plan, fresh, now=time.time(), started_at=run.started_at)
    return {
        "steps": n,
        "seconds": wall,
        "ms_per_step": wall * 1000 / n,
        "one_decide_at_the_end_ms": (time.perf_counter() - decide_started) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,2000,10000")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = [run_chain(n) for n in sizes]
    base = results[0]
    table = Table(title="local runner: a chain of `sh -c true` steps (one run, this machine)")
    for column in ("steps", "wall", "per step", f"growth vs {base['steps']:,}", "per step vs first"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            f"{r['steps']:,}",
            f"{r['seconds']:.1f} s",
            f"{r['ms_per_step']:.2f} ms",
            f"{r['seconds'] / base['seconds']:.2f}x",
            f"{r['ms_per_step'] / base['ms_per_step']:.2f}x",
        )
    report = figures.Report(Console())
    report.print(table)
    report.write(args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
