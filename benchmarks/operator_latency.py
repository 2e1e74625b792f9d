"""Operator performance against the emulated API server, compared with DESIGN.md's targets.

Each scenario starts a fresh emulator (in this process) and the real operator
(`python -m stepflow operator`, a subprocess), so the figures include the
HTTP round trips, kopf's watch streams and the operator's own work, on this
machine, in this one run. The emulator shares the machine's two cores with
the operator; that is stated in the output, not corrected for.

The emulator's process freezes its garbage collector's view of what exists when a
scenario starts (gc.freeze): full collections over earlier scenarios' objects
stalled every watch stream at once for 100-400 ms, which showed up as operator
latency although a real API server never pauses like that. The operator
process is not touched.

Baseline: the same operator with kopf's stock settings
(STEPFLOW_KOPF_STOCK_SETTINGS=1), to show what the startup tuning buys.

    python benchmarks/operator_latency.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cluster.cluster import Cluster, wait_for  # noqa: E402
from cluster.crds import workflow_crd  # noqa: E402
from cluster.jobs import Outcome  # noqa: E402
from operator_harness import OperatorProcess, workflow  # noqa: E402
from stepflow.status import parse_time  # noqa: E402

TARGETS = {
    "latency_p50_ms": ("<", 50), "latency_p99_ms": ("<", 250), "writes_per_step": ("<=", 3),
    "steps_per_second": (">=", 100), "peak_rss_mib": ("<", 200),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)]


class Session:
    """One emulator plus one operator process, torn down together."""

    def __init__(self, stock_settings: bool = False, operator_args: tuple[str, ...] = ()):
        self.directory = Path(tempfile.mkdtemp(prefix="stepflow-bench-"))
        self.cluster = Cluster(crds=[workflow_crd()], kubeconfig=self.directory / "kubeconfig",
                               history_limit=200_000)
        env = {"STEPFLOW_KOPF_STOCK_SETTINGS": "1"} if stock_settings else {}
        self.operator_args = operator_args
        self.env = env
        self.operator: OperatorProcess | None = None

    def __enter__(self) -> Session:
        self.cluster.start()
        gc.collect()
        gc.freeze()  # see the module docstring
        self.cluster.jobs.when(Outcome(duration=0.0))  # zero-duration steps unless a scenario says
        self.operator = OperatorProcess(self.cluster, self.directory / "operator.log",
                                        *self.operator_args, env=self.env).start()
        time.sleep(1.5)  # let kopf connect and list before the clock starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self.operator is not None:
            self.operator.stop()
        self.cluster.stop()
        gc.unfreeze()

    def wait_all(self, names: list[str], timeout: float) -> float:
        """Wait until every named workflow has finished; return the latest finishedAt.

        Polling copies objects inside the emulator's process, so it polls
        rarely and takes the end time from the status, not from the poll.
        """
        def finished() -> bool:
            phases = {(w["metadata"]["name"]): (w.get("status") or {}).get("phase")
                      for w in self.cluster.objects("workflows")}
            return all(phases.get(n) in ("Succeeded", "Failed") for n in names)

        wait_for(finished, timeout=timeout, interval=0.25)
        ends = [parse_time((w.get("status") or {}).get("finishedAt"))
                for w in self.cluster.objects("workflows") if w["metadata"]["name"] in set(names)]
        return max(e for e in ends if e is not None)

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by the operator process and by this (emulator) process."""
        assert self.operator is not None and self.operator.process is not None
        fields = Path(f"/proc/{self.operator.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks, time.process_time()

    def peak_rss_mib(self) -> float:
        assert self.operator is not None and self.operator.process is not None
        for line in Path(f"/proc/{self.operator.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def chain(name: str, length: int) -> dict[str, Any]:
    return workflow(name, [{"name": f"s{i:03d}", "script": "true"} for i in range(length)])


def five_steps(name: str) -> dict[str, Any]:
    """[a b] [c] [d e]: parallel groups and a barrier, zero-duration steps."""
    steps = [{"name": "a", "parallel": True}, {"name": "b", "parallel": True}, {"name": "c"},
             {"name": "d", "parallel": True}, {"name": "e", "parallel": True}]
    return workflow(name, [{**s, "script": "true"} for s in steps])


def latency_and_writes(stock: bool, workflows: int, length: int) -> dict[str, Any]:
    """Job finished -> next step's Job created, on sequential chains; and API requests per step."""
    with Session(stock_settings=stock) as session:
        cluster = session.cluster
        cluster.jobs.when(Outcome(duration=0.05))
        names = [f"chain-{i}" for i in range(workflows)]
        cluster.requests.clear()
        cpu_before = session.cpu_seconds()
        for name in names:
            cluster.create(chain(name, length))
        session.wait_all(names, timeout=300)
        cpu_after = session.cpu_seconds()
        time.sleep(0.5)  # let the last events land before counting
        delays = []
        for name in names:
            runs = {r.labels["stepflow.dev/step"]: r for r in cluster.jobs.runs
                    if r.labels.get("stepflow.dev/workflow") == name}
            for i in range(1, length):
                before, after = runs[f"s{i - 1:03d}"], runs[f"s{i:03d}"]
                delays.append((after.started - before.finished) * 1000)
        steps = workflows * length
        by_verb = Counter(f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}"
                          for r in cluster.requests if r.verb not in ("watch", "discovery"))
        writes = by_verb["create jobs"] + by_verb["patch workflows/status"] + by_verb["patch workflows"]
        return {
            "steps": steps,
            "operator_cpu_ms_per_step": (cpu_after[0] - cpu_before[0]) * 1000 / steps,
            "emulator_cpu_ms_per_step": (cpu_after[1] - cpu_before[1]) * 1000 / steps,
            "latency_p50_ms": percentile(delays, 50),
            "latency_p99_ms": percentile(delays, 99),
            "latency_max_ms": max(delays),
            "writes_per_step": writes / steps,
            "events_per_step": by_verb["create events"] / steps,
            "requests_per_step": {k: round(v / steps, 3) for k, v in sorted(by_verb.items())},
        }


def throughput(stock: bool, workflows: int) -> dict[str, Any]:
    with Session(stock_settings=stock) as session:
        names = [f"wf-{i:04d}" for i in range(workflows)]
        started = time.time()
        for name in names:
            session.cluster.create(five_steps(name))
        elapsed = session.wait_all(names, timeout=600) - started
        return {"workflows": workflows, "steps": workflows * 5, "seconds": elapsed,
                "steps_per_second": workflows * 5 / elapsed, "peak_rss_mib": session.peak_rss_mib()}


def memory(workflows: int) -> dict[str, Any]:
    with Session() as session:
        names = [f"mem-{i:04d}" for i in range(workflows)]
        for name in names:
            session.cluster.create(five_steps(name))
        session.wait_all(names, timeout=900)
        jobs = len(session.cluster.objects("jobs"))
        return {"workflows": workflows, "jobs": jobs, "peak_rss_mib": session.peak_rss_mib()}


def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    ok = value < target if op == "<" else value <= target if op == "<=" else value >= target
    return f"{op} {target}: {'met' if ok else 'NOT met'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI smoke), same shapes")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    console = Console()
    results: dict[str, Any] = {"machine": {"cores": __import__("os").cpu_count()}, "quick": args.quick}
    chains, length = max(int(10 * scale), 2), 20
    flows, mem_flows = max(int(200 * scale), 10), max(int(1000 * scale), 20)

    console.print(f"latency: 1 and {chains} chains x {length} sequential 50 ms steps ...")
    results["tuned"] = latency_and_writes(False, chains, length)
    results["stock"] = latency_and_writes(True, chains, length)
    results["tuned"]["uncontended"] = latency_and_writes(False, 1, length)
    results["stock"]["uncontended"] = latency_and_writes(True, 1, length)
    console.print(f"throughput: {flows} concurrent workflows x 5 zero-duration steps ...")
    results["tuned"]["throughput"] = throughput(False, flows)
    results["stock"]["throughput"] = throughput(True, flows)
    console.print(f"memory: {mem_flows} workflows x 5 steps ...")
    results["memory"] = memory(mem_flows)

    tuned, stock = results["tuned"], results["stock"]
    table = Table(title="operator against the emulator (one run, this machine; emulator shares the cores)")
    for column in ("measure", "tuned (stepflow)", "kopf stock settings", "DESIGN target"):
        table.add_column(column)
    for load, t, s in (("1 chain", tuned["uncontended"], stock["uncontended"]),
                       (f"{chains} chains", tuned, stock)):
        for q in ("p50", "p99"):
            key = f"latency_{q}_ms"
            table.add_row(f"Job finished -> next Job created, {q} (ms), {load}", f"{t[key]:.1f}",
                          f"{s[key]:.1f}", verdict(key, t[key]))
    rows = [("API writes per step (Job create + status patches)", "writes_per_step")]
    for label, key in rows:
        table.add_row(label, f"{tuned[key]:.1f}" if "ms" in key else f"{tuned[key]:.2f}",
                      f"{stock[key]:.1f}" if "ms" in key else f"{stock[key]:.2f}", verdict(key, tuned[key]))
    table.add_row("Events posted per step (not in the write budget)", f"{tuned['events_per_step']:.2f}",
                  f"{stock['events_per_step']:.2f}", "-")
    table.add_row(f"CPU per step, operator process (ms), {chains} chains",
                  f"{tuned['operator_cpu_ms_per_step']:.1f}", f"{stock['operator_cpu_ms_per_step']:.1f}", "-")
    table.add_row(f"CPU per step, emulator process (ms), {chains} chains",
                  f"{tuned['emulator_cpu_ms_per_step']:.1f}", f"{stock['emulator_cpu_ms_per_step']:.1f}", "-")
    table.add_row(f"throughput, {flows} workflows x 5 zero-duration steps (steps/s)",
                  f"{tuned['throughput']['steps_per_second']:.0f}",
                  f"{stock['throughput']['steps_per_second']:.0f}",
                  verdict("steps_per_second", tuned["throughput"]["steps_per_second"]))
    table.add_row(f"peak RSS, {results['memory']['workflows']} workflows / "
                  f"{results['memory']['jobs']} Jobs (MiB)", f"{results['memory']['peak_rss_mib']:.0f}", "-",
                  verdict("peak_rss_mib", results["memory"]["peak_rss_mib"]))
    console.print(table)
    requests = Table(title="API requests per step, by verb and resource (tuned, latency scenario)")
    requests.add_column("request")
    requests.add_column("per step", justify="right")
    for key, value in tuned["requests_per_step"].items():
        requests.add_row(key, f"{value:.3f}")
    console.print(requests)
    if args.quick:
        console.print("[yellow]--quick: scaled-down runs; targets refer to the full sizes[/yellow]")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
