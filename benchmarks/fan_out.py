"""What a fan-out (M1-M3) costs the operator on the real control plane (tests/kube/), against the
same steps written out.

Two workflows, each in a session of its own (a namespace and a fresh ``stepflow operator``, as in
benchmarks/operator_latency.py, on one control plane started here):

- **matrix**: one step with ``matrix: {item: [i000 ... i255]}``, 256 copies;
- **written out**: 256 parallel steps in one group, each with the value the copy would have had
  as an environment variable of the same name, so both make 256 Jobs of the same shape.

Every step takes no time (kwok ends each pod at once, tests/kube/stages.yaml), so what is
measured is the machinery: the operator, the Job controller, the scheduler and kwok. Both
workflows set ``maxConcurrency: 256`` (every step may run at once) and the operator runs with
no ``--max-running-jobs`` (its default: unlimited). Wall time is from the benchmark creating the
Workflow to the ``finishedAt`` the operator records; CPU comes from ``/proc`` as in
operator_latency.py, before the create and after the workflow finished; API requests come from the
API server's audit log.

    python benchmarks/fan_out.py [--copies 256] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import figures  # noqa: E402
from operator_harness import workflow  # noqa: E402
from operator_latency import WRITES, kube_sessions  # noqa: E402

SHAPES = {"matrix": "one step, a matrix of {n} values", "written": "{n} parallel steps written out"}


def values(copies: int) -> list[str]:
    return [f"i{i:03d}" for i in range(copies)]


def fanned(name: str, copies: int) -> dict[str, Any]:
    return workflow(name, [{"name": "each", "script": "true", "matrix": {"item": values(copies)}}],
                    maxConcurrency=copies)


def written(name: str, copies: int) -> dict[str, Any]:
    """The copies as steps of their own: the same script, the value as the same variable."""
    steps = [{"name": f"each-{i}", "script": "true", "parallel": True,
              "env": [{"name": "item", "value": value}]} for i, value in enumerate(values(copies))]
    return workflow(name, steps, maxConcurrency=copies)


def run_shape(session_for, shape: str, copies: int) -> dict[str, Any]:
    """One workflow of ``shape`` in a fresh session, created, waited for and measured."""
    with session_for("tuned", 0.0) as session:
        name = f"fan-{shape}"
        doc = (fanned if shape == "matrix" else written)(name, copies)
        cpu_before = session.cpu()
        started = time.time()
        session.create(doc)
        finished = session.wait_all([name], timeout=900)
        cpu_after = session.cpu()
        status = session.kube.status(name)
        assert status["phase"] == "Succeeded", status.get("message")
        jobs = len(session.kube.jobs(name))
        assert jobs == copies, f"{jobs} Jobs for {copies} steps"
        by_verb = session.requests()
        return {
            "shape": shape,
            "steps": copies,
            "seconds": finished - started,
            "steps_per_second": copies / (finished - started),
            "cpu_ms_per_step": {k: (cpu_after[k] - cpu_before[k]) * 1000 / copies for k in cpu_after},
            "writes_per_step": sum(by_verb.get(k, 0) for k in WRITES) / copies,
            "status_writes": by_verb.get("patch workflows/status", 0),
            "requests": dict(sorted(by_verb.items())),
            "status_kib": len(json.dumps(status, separators=(",", ":"))) / 1024,
            "peak_rss_mib": session.peak_rss_mib(),
        }


def print_table(report: figures.Report, results: dict[str, Any]) -> None:
    copies = results["copies"]
    runs = results["runs"]
    table = Table(title=f"{copies} zero-duration steps on the real control plane (tests/kube), "
                        f"maxConcurrency {copies}, no operator-wide cap: one run, this machine "
                        f"({results['machine']['cores']} cores shared by every process)")
    table.add_column("measure")
    for shape in SHAPES:
        table.add_column(SHAPES[shape].format(n=copies), justify="right")
    processes = sorted(set(runs["matrix"]["cpu_ms_per_step"]) - {"operator"})
    rows: list[tuple[str, Any, str]] = [
        ("wall time, Workflow created -> finishedAt (s)", lambda r: r["seconds"], "{:.2f}"),
        ("steps per second", lambda r: r["steps_per_second"], "{:.1f}"),
        ("operator CPU per copy / step (ms)", lambda r: r["cpu_ms_per_step"]["operator"], "{:.2f}"),
        *((f"  {p} CPU per copy / step (ms)", lambda r, p=p: r["cpu_ms_per_step"][p], "{:.2f}")
          for p in processes),
        ("operator API writes per copy / step, Events included", lambda r: r["writes_per_step"], "{:.2f}"),
        ("  of which status writes (whole run)", lambda r: r["status_writes"], "{:d}"),
        ("final status size (KiB)", lambda r: r["status_kib"], "{:.1f}"),
        ("operator peak RSS (MiB)", lambda r: r["peak_rss_mib"], "{:.0f}"),
    ]
    for label, pick, fmt in rows:
        table.add_row(label, *(fmt.format(pick(runs[shape])) for shape in SHAPES))
    report.print(table)
    matrix, plain = runs["matrix"], runs["written"]
    extra = matrix["cpu_ms_per_step"]["operator"] / plain["cpu_ms_per_step"]["operator"] - 1
    report.print(f"fan-out: {extra:+.1%} operator CPU per copy against the same steps written out; wall "
                 f"time {matrix['seconds']:.2f} s against {plain['seconds']:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=256, help="copies of the matrix step (at most 256)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    args = parser.parse_args()
    if not 1 <= args.copies <= 256:
        parser.error("--copies: from 1 to 256 (M1)")
    console = Console()
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "copies": args.copies, "runs": {}}
    with contextlib.ExitStack() as stack:
        session_for = kube_sessions(stack, None)
        for shape in ("written", "matrix"):
            console.print(f"[real control plane] {SHAPES[shape].format(n=args.copies)} ...")
            results["runs"][shape] = run_shape(session_for, shape, args.copies)
    report = figures.Report(console)
    print_table(report, results)
    report.write(args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
