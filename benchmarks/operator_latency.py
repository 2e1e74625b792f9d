"""Operator performance on the real control plane (tests/kube/), against DESIGN.md's targets.

By default every scenario runs on one real control plane built from Go modules: etcd,
kube-apiserver, kube-controller-manager (the real Job controller), kube-scheduler and kwok as
the kubelet, all on this machine's two cores together with the operator. Each scenario has a
namespace of its own and a fresh ``stepflow operator`` logged in as deploy/'s ServiceAccount.
A watch in this process records when each Job and pod change reaches a client; the API
server's audit log counts the operator's requests; /proc gives each process's CPU.

Two step-to-step figures are reported:
- the operator's reaction: the previous step's end seen (its pod ended, or its Job Complete if
  that came first) -> the next Job created;
- end to end: the previous pod ended -> the next pod running, which adds the Job controller
  (pod creation), the scheduler and kwok.

Baseline: the same operator with kopf's stock settings (STEPFLOW_KOPF_STOCK_SETTINGS=1).

    python benchmarks/operator_latency.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
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

# DESIGN.md, Performance targets: (comparison, target).
TARGETS = {
    "latency_1_p50_ms": ("<", 10),
    "latency_1_p99_ms": ("<", 50),
    "latency_n_p50_ms": ("<", 25),
    "latency_n_p99_ms": ("<", 150),
    "operator_cpu_ms_per_step": ("<", 4),
    "writes_per_step": ("<=", 3),
    "steps_per_second": (">=", 250),
    "peak_rss_mib": ("<", 150),
}
WRITES = (
    "create jobs",
    "patch workflows/status",
    "patch workflows",
    "create events",
    "patch events",
    "delete jobs",
)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)]


def step(name: str, seconds: float) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": name, "script": "true"}
    if seconds:  # read by tests/kube/stages.yaml
        fields["podMetadata"] = {"annotations": {"test.stepflow.dev/duration": f"{int(seconds * 1000)}ms"}}
    return fields


def chain(name: str, length: int, seconds: float) -> dict[str, Any]:
    return workflow(name, [step(f"s{i:03d}", seconds) for i in range(length)])


def five_steps(name: str, pool: str | None = None, style: str = "plain") -> dict[str, Any]:
    """[a b] [c] [d e]: parallel groups and a barrier, zero-duration steps; each in ``pool``.
    ``style`` "typed": each step names BENCH_TYPE with a param; "written": the same step written
    out (the param as the env variable it becomes), so both make the same Jobs."""
    steps = [
        {"name": "a", "parallel": True},
        {"name": "b", "parallel": True},
        {"name": "c"},
        {"name": "d", "parallel": True},
        {"name": "e", "parallel": True},
    ]
    how: dict[str, Any] = {
        "plain": {"script": "true"},
        "typed": {"type": BENCH_TYPE["metadata"]["name"], "with": {"TARGET": name}},
        "written": {"script": "true", "env": [{"name": "TARGET", "value": name}]},
    }[style]
    return workflow(name, [{**s, **how, **({"pool": pool} if pool else {})} for s in steps])


BENCH_TYPE = {  # what a typed step of the types scenario says in one word
    "apiVersion": "stepflow.dev/v1alpha1",
    "kind": "StepType",
    "metadata": {"name": "bench-step"},
    "spec": {"script": "true", "params": [{"name": "TARGET", "description": "any value"}]},
}


POOLS = 4  # the pools scenario spreads the workflows over this many StepPools
POOL_LIMIT = 1000  # more than ever run at once: the pools book every step but hold none back


def step_pool(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "StepPool",
        "metadata": {"name": name},
        "spec": {"limit": POOL_LIMIT},
    }


def latency_and_writes(session_for, variant: str, workflows: int, length: int) -> dict[str, Any]:
    """Step-to-step delays on sequential chains of 50 ms steps; CPU and API requests per step."""
    with session_for(variant, 0.05) as session:
        names = [f"chain-{i}" for i in range(workflows)]
        cpu_before = session.cpu()
        for name in names:
            session.create(chain(name, length, 0.05))
        session.wait_all(names, timeout=600)
        cpu_after = session.cpu()
        reaction, end_to_end = session.step_delays(names, length)
        steps = workflows * length
        by_verb = session.requests()
        return {
            "steps": steps,
            "cpu_ms_per_step": {k: (cpu_after[k] - cpu_before[k]) * 1000 / steps for k in cpu_after},
            "latency_p50_ms": percentile(reaction, 50),
            "latency_p99_ms": percentile(reaction, 99),
            "latency_max_ms": max(reaction, default=float("nan")),
            "end_to_end_p50_ms": percentile(end_to_end, 50),
            "end_to_end_p99_ms": percentile(end_to_end, 99),
            "writes_per_step": sum(by_verb.get(k, 0) for k in WRITES) / steps,
            "requests_per_step": {k: round(v / steps, 3) for k, v in sorted(by_verb.items())},
        }


def throughput(
    session_for, variant: str, workflows: int, profile: Path | None = None, pools: bool = False,
    style: str = "plain",
) -> dict[str, Any]:
    """Zero-duration steps as fast as they go; with ``pools``, every step also takes a slot of
    one of POOLS StepPools (R2), whose limits never bind: what the pools' bookkeeping costs.
    ``style``: see :func:`five_steps` (what step types cost, T2)."""
    with session_for(variant, 0.0) as session:
        names = [f"wf-{i:04d}" for i in range(workflows)]
        if pools:
            for index in range(POOLS):
                session.create(step_pool(f"pool-{index}"))
        if style == "typed":
            session.create(BENCH_TYPE)
        if pools or style == "typed":
            time.sleep(2)  # the operator has seen them before the clock starts
        spy = start_profiler(session, profile) if profile is not None else None
        cpu_before = session.cpu()
        started = time.time()
        for index, name in enumerate(names):
            session.create(five_steps(name, f"pool-{index % POOLS}" if pools else None, style))
        elapsed = session.wait_all(names, timeout=900) - started
        cpu_after = session.cpu()
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(60)
        steps = workflows * 5
        counts = session.watch_counts() if hasattr(session, "watch_counts") else {}
        return {
            "workflows": workflows,
            "steps": steps,
            "seconds": elapsed,
            "steps_per_second": steps / elapsed,
            "cpu_ms_per_step": {k: (cpu_after[k] - cpu_before[k]) * 1000 / steps for k in cpu_after},
            "peak_rss_mib": session.peak_rss_mib(),
            "watch_events_per_step": {k: v / steps for k, v in counts.items()},
            "profiled": profile is not None,
            "style": style,
        }


def mean_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Two throughput runs of one style as one: the mean of each figure, and both runs kept."""
    cpu = {k: sum(r["cpu_ms_per_step"][k] for r in runs) / len(runs) for k in runs[0]["cpu_ms_per_step"]}
    return {"steps": runs[0]["steps"], "runs": len(runs), "cpu_ms_per_step": cpu,
            "steps_per_second": sum(r["steps_per_second"] for r in runs) / len(runs),
            "each": runs}


def start_profiler(session: Any, path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator's threads: speedscope JSON for a .json path, else collapsed stacks."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("--profile needs py-spy, a test extra: make .venv/.installed")
    pid = session.operator.process.pid
    fmt = "speedscope" if path.suffix == ".json" else "raw"
    # --gil: only the thread running Python at each sample, so the profile shows where the CPU
    # goes, not who waits; --nonblocking: never pause the operator to sample it.
    sampling = ["--rate", "250", "--nonblocking", "--gil", "--format", fmt]
    process = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), *sampling, "-o", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached before the clock starts
    return process


def memory(session_for, variant: str, workflows: int) -> dict[str, Any]:
    with session_for(variant, 0.0) as session:
        names = [f"mem-{i:04d}" for i in range(workflows)]
        for name in names:
            session.create(five_steps(name))
        session.wait_all(names, timeout=1800)
        return {
            "workflows": workflows,
            "jobs": workflows * 5,
            "peak_rss_mib": session.peak_rss_mib(),
            "rss_after_mib": session.rss_mib(),  # all finished: what stays cached
        }


def verdict(key: str, value: float) -> str:
    op, target = TARGETS[key]
    ok = value < target if op == "<" else value <= target if op == "<=" else value >= target
    return f"{op} {target}: {'met' if ok else 'MISSED'}"


def kube_sessions(stack: contextlib.ExitStack, previous: Path | None):
    """A session factory on one real control plane, started here and stopped with ``stack``;
    ``previous`` is the checkout whose operator the "previous" variant runs."""
    from kube.build import ensure_assets
    from kube.controlplane import ControlPlane
    from kube_session import KubeSession

    plane = stack.enter_context(
        ControlPlane(ensure_assets(), Path(tempfile.mkdtemp(prefix="stepflow-bench-")))
    )
    plane.kubectl("apply", "-k", str(ROOT / "deploy"))
    plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/workflows.stepflow.dev",
        "crd/steppools.stepflow.dev",
        "crd/steptypes.stepflow.dev",
        "crd/clustersteptypes.stepflow.dev",
    )
    credentials = plane.token_kubeconfig(
        "stepflow-operator", "stepflow-system", plane.workdir / "operator.kubeconfig"
    )
    # kopf's stock settings scan CRDs, which deploy/'s least-privilege RBAC refuses: the baseline
    # runs as a ServiceAccount bound to cluster-admin (the audit log records it all the same).
    plane.kubectl("create", "serviceaccount", "stepflow-baseline", "--namespace=stepflow-system")
    plane.kubectl(
        "create",
        "clusterrolebinding",
        "stepflow-baseline",
        "--clusterrole=cluster-admin",
        "--serviceaccount=stepflow-system:stepflow-baseline",
    )
    baseline = plane.token_kubeconfig(
        "stepflow-baseline", "stepflow-system", plane.workdir / "baseline.kubeconfig"
    )

    def session(variant: str, _seconds: float) -> KubeSession:
        if variant == "stock":
            return KubeSession(plane, baseline, "stepflow-baseline", stock_settings=True)
        if variant == "previous":
            assert previous is not None
            return KubeSession(plane, credentials, "stepflow-operator", checkout=previous)
        return KubeSession(plane, credentials, "stepflow-operator")

    return session


# The last commit before the performance work of issue 13: "the previous release".
PREVIOUS_RELEASE = "b0a85525131b125c5ee9f55dc2fbede279ee3480"
VARIANTS = {
    "tuned": "stepflow",
    "stock": "kopf stock settings",
    "previous": "previous release",
}
SCENARIOS = ("latency", "throughput", "pools", "types", "memory")


def previous_checkout(ref: str) -> Path:
    """A git worktree of ``ref`` (made once, kept in the temp directory) for its operator."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"stepflow-release-{commit[:12]}"
    if not (path / "operator" / "stepflow").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--force", "--detach", str(path), commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test), same shapes")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="record the tuned operator's throughput run with py-spy (speedscope JSON); "
        "the sampling costs CPU, so that run's figures are marked as profiled",
    )
    parser.add_argument(
        "--previous",
        metavar="REF",
        default=PREVIOUS_RELEASE,
        help=f"the git commit whose operator is the previous release (default {PREVIOUS_RELEASE[:12]})",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="which operators to run, of " + ", ".join(VARIANTS)
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="which scenarios to run, of " + ", ".join(SCENARIOS)
    )
    args = parser.parse_args()
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    scenarios = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    scale = 0.25 if args.quick else 1.0
    console = Console()
    tier = "real control plane (tests/kube)"
    results: dict[str, Any] = {
        "machine": {"cores": os.cpu_count()},
        "quick": args.quick,
        "tier": tier,
        "variants": variants,
    }
    previous = previous_checkout(args.previous) if "previous" in variants else None
    if previous is not None:
        results["previous_release"] = args.previous
    chains, length = max(int(10 * scale), 2), 20
    flows, mem_flows = max(int(200 * scale), 10), max(int(1000 * scale), 20)
    with contextlib.ExitStack() as stack:
        session_for = kube_sessions(stack, previous)
        for variant in variants:
            results[variant] = {}
        if "latency" in scenarios:
            console.print(f"[{tier}] latency: 1 and {chains} chains x {length} sequential 50 ms steps ...")
            for variant in variants:
                results[variant]["one_chain"] = latency_and_writes(session_for, variant, 1, length)
                results[variant]["chains"] = latency_and_writes(session_for, variant, chains, length)
        if "throughput" in scenarios:
            console.print(f"[{tier}] throughput: {flows} concurrent workflows x 5 zero-duration steps ...")
            for variant in variants:
                profile = Path(args.profile) if args.profile and variant == "tuned" else None
                results[variant]["throughput"] = throughput(session_for, variant, flows, profile)
        if "pools" in scenarios and "tuned" in variants:
            console.print(
                f"[{tier}] pools: the throughput run with every step in one of {POOLS} StepPools ..."
            )
            results["tuned"]["pools"] = throughput(session_for, "tuned", flows, pools=True)
        if "types" in scenarios and "tuned" in variants:
            console.print(f"[{tier}] types: {flows} workflows x 5 steps written out, and the same steps "
                          "each naming a StepType; twice each, in the order written, typed, typed, "
                          "written ...")
            runs: dict[str, list[dict[str, Any]]] = {"written": [], "typed": []}
            for style in ("written", "typed", "typed", "written"):  # ABBA: drift falls on both
                runs[style].append(throughput(session_for, "tuned", flows, style=style))
            for style, pair in runs.items():
                results["tuned"][f"steps_{style}"] = mean_of(pair)
        if "memory" in scenarios:
            console.print(f"[{tier}] memory: {mem_flows} workflows x 5 steps ...")
            for variant in variants:
                if variant != "stock":  # the stock settings change nothing that memory measures
                    results[variant]["memory"] = memory(session_for, variant, mem_flows)
    report = figures.Report(console)
    print_tables(report, results, chains, flows)
    if args.quick:
        report.print("[yellow]--quick: scaled-down runs; the targets refer to the full sizes[/yellow]")
    report.write(args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _cell(results: dict[str, Any], variant: str, *path: str, fmt: str = "{:.1f}") -> str:
    value: Any = results.get(variant, {})
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return "-"
        value = value[key]
    return fmt.format(value)


def print_tables(console: figures.Report, results: dict[str, Any], chains: int, flows: int) -> None:
    variants = results["variants"]
    first = variants[0]
    table = Table(
        title=f"stepflow operator on the {results['tier']}: one run, this machine "
        f"({results['machine']['cores']} cores shared by every process)"
    )
    table.add_column("measure")
    for variant in variants:
        label = VARIANTS[variant]
        if variant == "previous":
            label += f" ({results['previous_release'][:12]})"
        table.add_column(label, justify="right")
    table.add_column(f"DESIGN target ({VARIANTS[first]})")

    def row(label: str, path: tuple[str, ...], target: str | None, fmt: str = "{:.1f}") -> None:
        cells = [_cell(results, v, *path, fmt=fmt) for v in variants]
        if all(cell == "-" for cell in cells):  # a scenario that did not run
            return
        value = results.get(first, {})
        for key in path:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        judged = verdict(target, value) if target and isinstance(value, (int, float)) else "reported"
        table.add_row(label, *cells, judged)

    for load, key, target in (
        ("1 chain", "one_chain", "latency_1"),
        (f"{chains} chains", "chains", "latency_n"),
    ):
        for q in ("p50", "p99"):
            row(
                f"step end seen -> next Job created, {q} (ms), {load}",
                (key, f"latency_{q}_ms"),
                f"{target}_{q}_ms",
            )
        for q in ("p50", "p99"):
            row(
                f"end to end: pod ended -> next pod running, {q} (ms), {load}",
                (key, f"end_to_end_{q}_ms"),
                None,
            )
    row(
        f"API writes per step, Events included, {chains} chains",
        ("chains", "writes_per_step"),
        "writes_per_step",
        "{:.2f}",
    )
    row(
        "operator CPU per step (ms), throughput run",
        ("throughput", "cpu_ms_per_step", "operator"),
        "operator_cpu_ms_per_step",
        "{:.2f}",
    )
    processes = sorted(
        {p for v in variants for p in results[v].get("throughput", {}).get("cpu_ms_per_step", {})}
        - {"operator"}
    )
    for process in processes:
        row(f"  {process} CPU per step (ms)", ("throughput", "cpu_ms_per_step", process), None, "{:.2f}")
    for resource, whose in (
        ("jobs", "every variant's watch"),
        ("pods", "kopf stock settings and the previous release"),
        ("pods, ended only", "stepflow's phase-filtered watch"),
    ):
        row(
            f"  watch events per step, {resource} ({whose})",
            ("throughput", "watch_events_per_step", resource),
            None,
            "{:.2f}",
        )
    row(
        f"throughput, {flows} workflows x 5 zero-duration steps (steps/s)",
        ("throughput", "steps_per_second"),
        "steps_per_second",
        "{:.0f}",
    )
    pools, plain = results.get("tuned", {}).get("pools"), results.get("tuned", {}).get("throughput")
    if pools:
        row(
            f"  the same, every step in one of {POOLS} StepPools (steps/s)",
            ("pools", "steps_per_second"),
            None,
            "{:.0f}",
        )
        row("  operator CPU per step with StepPools (ms)", ("pools", "cpu_ms_per_step", "operator"), None)
    tuned = results.get("tuned", {})
    written, typed = tuned.get("steps_written"), tuned.get("steps_typed")
    if written and typed:
        row("steps written out: operator CPU per step (ms), mean of 2 runs",
            ("steps_written", "cpu_ms_per_step", "operator"), None, "{:.2f}")
        row("  the same steps each naming a StepType (ms)", ("steps_typed", "cpu_ms_per_step", "operator"),
            None, "{:.2f}")
        row("  steps written out (steps/s)", ("steps_written", "steps_per_second"), None, "{:.0f}")
        row("  steps naming a StepType (steps/s)", ("steps_typed", "steps_per_second"), None, "{:.0f}")
    memory = next((results[v]["memory"] for v in variants if "memory" in results[v]), None)
    if memory is not None:
        row(
            f"operator peak RSS, {memory['workflows']} workflows / {memory['jobs']} Jobs (MiB)",
            ("memory", "peak_rss_mib"),
            "peak_rss_mib",
            "{:.0f}",
        )
        row("  operator RSS once all have finished (MiB)", ("memory", "rss_after_mib"), None, "{:.0f}")
    console.print(table)
    if pools and plain:
        ratio = pools["steps_per_second"] / plain["steps_per_second"]
        within = "within" if ratio >= 0.9 else "NOT within"
        console.print(f"StepPools: {ratio:.0%} of the throughput without them ({within} 10%, issue 10)")
    if written and typed:
        extra = typed["cpu_ms_per_step"]["operator"] / written["cpu_ms_per_step"]["operator"] - 1
        within = "within" if extra <= 0.10 else "NOT within"
        each = "; ".join(
            f"{style}: " + ", ".join(f"{r['cpu_ms_per_step']['operator']:.2f}" for r in run["each"])
            for style, run in (("written out", written), ("typed", typed)))
        console.print(f"step types: {extra:+.1%} operator CPU per step against the same steps written "
                      f"out ({within} the 10% of issue 26); each run, in ms per step: {each}")
    if any(results[v].get("throughput", {}).get("profiled") for v in variants):
        console.print(
            "[yellow]the tuned throughput run was sampled by py-spy (--profile): its CPU is higher[/yellow]"
        )
    for variant in variants:
        per_step = results[variant].get("chains", {}).get("requests_per_step")
        if not per_step:
            continue
        requests = Table(
            title=f"API requests per step by verb and resource: {VARIANTS[variant]}, {chains} chains"
        )
        requests.add_column("request")
        requests.add_column("per step", justify="right")
        for key, value in per_step.items():
            requests.add_row(key, f"{value:.3f}")
        console.print(requests)


if __name__ == "__main__":
    sys.exit(main())
