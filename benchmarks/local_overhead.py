"""What the local runner costs on top of the steps themselves.

Runs real processes through ``LocalRun`` (the engine behind ``stepflow run``)
and compares the wall time with the ideal, the time the steps alone need:

- 3 parallel 1-second steps: ideal 1 s; DESIGN target: wall time < 1.15 s;
- 20 parallel 1-second steps under ``maxConcurrency: 5``: ideal 4 s (4 waves of 5);
- the first again through ``stepflow run`` in a new process, as a user types it: the
  interpreter's start and imports count too.

    .venv/bin/python benchmarks/local_overhead.py [--repeat N] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import figures
from stepflow.local import LocalRun
from stepflow.plan import compile_workflow
from stepflow.status import parse_time


def document(count: int, cap: int, seconds: float) -> dict[str, Any]:
    steps = [{"name": f"step-{i}", "parallel": True, "script": f"sleep {seconds}"} for i in range(count)]
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "overhead"},
        "spec": {"maxConcurrency": cap, "steps": steps},
    }


SCENARIOS = [
    # name, steps, cap, seconds per step, ideal wall time, DESIGN target (None: none set), via CLI
    ("3 parallel 1 s steps", 3, 5, 1.0, 1.0, 1.15, False),
    ("20 x 1 s steps, maxConcurrency 5", 20, 5, 1.0, 4.0, None, False),
    ("3 parallel 1 s steps, `stepflow run`", 3, 5, 1.0, 1.0, 1.15, True),
]


def run_cli(count: int, cap: int, seconds: float) -> dict[str, float]:
    """``stepflow run FILE --report`` in a new process, timed from spawn to exit."""
    with tempfile.TemporaryDirectory() as tmp:
        file, report = Path(tmp) / "wf.json", Path(tmp) / "report.json"
        file.write_text(json.dumps(document(count, cap, seconds)))  # JSON is YAML
        stepflow = Path(sys.executable).with_name("stepflow")
        start = time.perf_counter()
        subprocess.run(
            [str(stepflow), "run", str(file), "--report", str(report), "--logs", tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        status = json.loads(report.read_text())
    steps_took = [parse_time(e["finishedAt"]) - parse_time(e["startedAt"]) for e in status["steps"].values()]
    return {"wall": wall, "mean_step": sum(steps_took) / len(steps_took)}


def run_once(count: int, cap: int, seconds: float, via_cli: bool = False) -> dict[str, float]:
    """Wall time around the whole run (as a user waits for it) and the run's own span."""
    if via_cli:
        return run_cli(count, cap, seconds)
    plan = compile_workflow(document(count, cap, seconds))
    with tempfile.TemporaryDirectory() as logs:
        run = LocalRun(plan, log_dir=Path(logs))
        start = time.perf_counter()
        decision = asyncio.run(run.run())
        wall = time.perf_counter() - start
    if decision.phase != "Succeeded":
        raise SystemExit(f"run failed: {decision.message}")
    steps = [s.finished_at - s.started_at for s in run.states.values()]
    return {"wall": wall, "mean_step": sum(steps) / len(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the median counts")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    args = parser.parse_args()
    console = figures.Report(Console(width=max(Console().width, 120)))
    table = Table(title=f"local runner overhead (LocalRun, real processes), median of {args.repeat}")
    for column in ("scenario", "ideal", "wall", "overhead", "overhead %", "mean step", "target", ""):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    results: list[dict[str, Any]] = []
    for name, count, cap, seconds, ideal, target, via_cli in SCENARIOS:
        runs = sorted(
            (run_once(count, cap, seconds, via_cli) for _ in range(args.repeat)), key=lambda r: r["wall"]
        )
        middle = runs[len(runs) // 2]
        wall = middle["wall"]
        met = None if target is None else wall < target
        verdict = "" if met is None else ("[green]met[/green]" if met else "[red]missed[/red]")
        table.add_row(
            name,
            f"{ideal:.2f} s",
            f"{wall:.3f} s",
            f"{(wall - ideal) * 1000:.0f} ms",
            f"{(wall / ideal - 1) * 100:.1f} %",
            f"{middle['mean_step']:.3f} s",
            "-" if target is None else f"< {target:.2f} s",
            verdict,
        )
        results.append(
            {
                "scenario": name,
                "steps": count,
                "maxConcurrency": cap,
                "step_seconds": seconds,
                "ideal_seconds": ideal,
                "wall_seconds": wall,
                "all_walls": [r["wall"] for r in runs],
                "mean_step_seconds": middle["mean_step"],
                "target_seconds": target,
                "met": met,
            }
        )
    console.print(table)
    console.print(
        "wall: LocalRun.run() called to returned (step processes' start-up and scheduling "
        "included), or for `stepflow run` process spawned to exited (Python start and imports "
        "included); mean step: a step's startedAt..finishedAt (sleep + fork/exec + reaping)"
    )
    console.write(args.markdown)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "benchmark": "local_overhead",
                    "python": platform.python_version(),
                    "repeat": args.repeat,
                    "results": results,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
