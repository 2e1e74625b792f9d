"""stepflow against Argo Workflows and Tekton Pipelines, side by side on one real control plane
(tests/kube/), one controller at a time, in one run (issue 29; DESIGN.md, "Against the peers").

Five variants: stepflow as shipped; stepflow with kopf's stock settings (the baseline); Argo
Workflows v3.7.18 at its defaults; Argo tuned (the 1 s requeue of Argo's own dev setup and the
client rate limit raised as its docs/scaling.md advises); Tekton Pipelines v1.15.1. The peers'
controllers are built from Go modules once per machine (tests/kube/peers.py). Each controller
runs as a process of this machine with a ServiceAccount token of its own; kwok plays the kubelet
and ends every pod at once. The same workflows are written for each (benchmarks/peer_workflows.py):

- 1 chain of 20 steps, and 10 chains at once: the reaction (a step's pod ended -> the next
  step's child created), from the API server's audit log, and steps per second end to end; for
  the single chain, where a step's time goes, phase by phase (benchmarks/peer_phases.py);
- 200 workflows x 5 steps (a DAG: a and b, then c, then d and e): throughput, controller CPU per step
  (/proc), API writes per step by verb and resource, Events included (audit log);
- a 1,000-step fan-out capped at 50 (Tekton: no cap): wall time, API server CPU, largest object;
- memory (VmRSS) of the controller with 1,000 finished one-step workflows.

    python benchmarks/peers.py [--quick] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import figures  # noqa: E402
import peer_phases  # noqa: E402
import peer_targets  # noqa: E402
import peer_workflows  # noqa: E402
from peer_session import AuditLog, Controller, Scenarios, peer_controller, stepflow_controller  # noqa: E402

VARIANTS = {
    "stepflow": "stepflow",
    "stock": "stepflow, kopf stock settings",
    "argo": "Argo defaults",
    "argo-tuned": "Argo tuned",
    "tekton": "Tekton",
}
SHAPES = {"stepflow": peer_workflows.Stepflow(), "stock": peer_workflows.Stepflow(),
          "argo": peer_workflows.Argo(), "argo-tuned": peer_workflows.Argo(),
          "tekton": peer_workflows.Tekton()}
SCENARIOS = ("memory", "chain", "chains", "throughput", "fan_out")


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"length": 5, "chains": 3, "workflows": 20, "copies": 100, "cap": 50, "memory": 100}
    return {"length": 20, "chains": 10, "workflows": 200, "copies": 1000, "cap": 50, "memory": 1000}


def control_plane(stack: contextlib.ExitStack) -> tuple[Any, dict[str, Path]]:
    """The tier with the peers' Stages and audit rule, deploy/ installed, and the two stepflow
    credentials of benchmarks/operator_latency.py (the stock settings need cluster-admin)."""
    from kube.build import ensure_assets
    from kube.peers import PeerControlPlane

    plane = stack.enter_context(PeerControlPlane(ensure_assets(), Path(tempfile.mkdtemp(prefix="peers-"))))
    plane.kubectl("apply", "-k", str(ROOT / "deploy"))
    plane.wait_established("workflows.stepflow.dev", "steppools.stepflow.dev")
    plane.kubectl("create", "serviceaccount", "stepflow-baseline", "--namespace=stepflow-system")
    plane.kubectl("create", "clusterrolebinding", "stepflow-baseline", "--clusterrole=cluster-admin",
                  "--serviceaccount=stepflow-system:stepflow-baseline")
    credentials = {
        account: plane.token_kubeconfig(account, "stepflow-system", plane.workdir / f"{account}.kubeconfig")
        for account in ("stepflow-operator", "stepflow-baseline")
    }
    return plane, credentials


def controllers(plane: Any, credentials: dict[str, Path], wanted: list[str]) -> dict[str, Controller | str]:
    """Each variant's controller, or the exact error that keeps it from running."""
    from kube.peers import Argo, Tekton, ensure_argo, ensure_tekton

    found: dict[str, Controller | str] = {
        "stepflow": stepflow_controller(plane, credentials["stepflow-operator"], "stepflow-operator",
                                        VARIANTS["stepflow"], stock=False),
        "stock": stepflow_controller(plane, credentials["stepflow-baseline"], "stepflow-baseline",
                                     VARIANTS["stock"], stock=True),
    }
    peers = ((("argo", "argo-tuned"), Argo, ensure_argo), (("tekton",), Tekton, ensure_tekton))
    for keys, kind, ensure in peers:
        if not set(keys) & set(wanted):
            continue
        try:
            peer = kind(plane, ensure())
            peer.install()
            for key in keys:
                found[key] = peer_controller(peer, VARIANTS[key], tuned=key.endswith("tuned"))
        except Exception as error:
            for key in keys:
                found[key] = f"{type(error).__name__}: {error}"
    return found


def run_variant(plane: Any, audit: AuditLog, controller: Controller, key: str, size: dict[str, int],
                scenarios: list[str], console: Console) -> dict[str, Any]:
    """Every scenario against one controller, started here and stopped at the end; a scenario
    that fails records its error and the rest still run."""
    runs = Scenarios(plane, controller, SHAPES[key], audit)
    result: dict[str, Any] = {}
    controller.start()
    try:
        warm = runs.chains(1, 1)  # the controller works before anything is measured
        if warm["outcomes"].get("Succeeded") != 1:
            return {"error": f"a one-step workflow did not succeed: {warm['outcomes']}"}
        plan = {
            "memory": lambda: runs.memory(size["memory"]),
            "chain": lambda: runs.chains(1, size["length"]),
            "chains": lambda: runs.chains(size["chains"], size["length"]),
            "throughput": lambda: runs.throughput(size["workflows"]),
            "fan_out": lambda: runs.fan_out(size["copies"], size["cap"]),
        }
        for name in scenarios:
            started = time.monotonic()
            console.print(f"  {controller.label}: {name} ...")
            try:
                result[name] = plan[name]()
            except Exception as error:
                traceback.print_exc()
                result[name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
            console.print(f"  {controller.label}: {name} done in {time.monotonic() - started:.0f} s")
    except Exception as error:
        traceback.print_exc()
        result["error"] = f"{type(error).__name__}: {str(error)[:1000]}"
    finally:
        controller.stop()
    return result


def _get(results: dict[str, Any], key: str, path: tuple[str, ...]) -> Any:
    value: Any = results.get(key, {})
    for part in path:
        if not isinstance(value, dict):
            return None
        if "error" in value and part not in value:
            return value["error"]
        value = value.get(part)
    return value


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return "error (below)"
    return "n/a" if isinstance(value, float) and math.isnan(value) else fmt.format(value)


ROWS = (
    ("1 chain of {length}: reaction p50 (ms)", ("chain", "reaction_p50_ms"), "{:.0f}"),
    ("1 chain of {length}: reaction p99 (ms)", ("chain", "reaction_p99_ms"), "{:.0f}"),
    ("1 chain of {length}: steps/s end to end", ("chain", "steps_per_second"), "{:.2f}"),
    ("{chains} chains at once: reaction p50 (ms)", ("chains", "reaction_p50_ms"), "{:.0f}"),
    ("{chains} chains at once: reaction p99 (ms)", ("chains", "reaction_p99_ms"), "{:.0f}"),
    ("{chains} chains at once: steps/s end to end", ("chains", "steps_per_second"), "{:.2f}"),
    ("{workflows} workflows x 5 steps: steps/s", ("throughput", "steps_per_second"), "{:.1f}"),
    ("  controller CPU per step (ms)", ("throughput", "cpu_ms_per_step"), "{:.2f}"),
    ("  kube-controller-manager CPU per step (ms)", ("throughput", "kcm_cpu_ms_per_step"), "{:.2f}"),
    ("  API writes per step, Events included", ("throughput", "writes_per_step"), "{:.2f}"),
    ("fan-out of {copies}, cap {cap}: wall time (s)", ("fan_out", "wall_seconds"), "{:.1f}"),
    ("  API server CPU (s)", ("fan_out", "apiserver_cpu_seconds"), "{:.1f}"),
    ("  controller CPU (s)", ("fan_out", "controller_cpu_seconds"), "{:.1f}"),
    ("  largest object stored (KiB)", ("fan_out", "largest_object_kib"), "{:.0f}"),
    ("memory: VmRSS with {memory} finished workflows (MiB)", ("memory", "rss_mib"), "{:.0f}"),
)


def tables(report: figures.Report, results: dict[str, Any]) -> None:
    keys, size = results["variants"], results["sizes"]
    table = Table(title=f"stepflow, Argo Workflows {results['argo_version']} and Tekton Pipelines "
                  f"{results['tekton_version']} on one real control plane, one run "
                  f"({results['cores']} cores)")
    table.add_column("measure")
    for key in keys:
        table.add_column(VARIANTS[key], justify="right")
    for label, path, fmt in ROWS:
        table.add_row(label.format(**size), *(_cell(_get(results, k, path), fmt) for k in keys))
    outcomes = [f"{VARIANTS[k]} {s}: {v['outcomes']}" for k in keys for s, v in results.get(k, {}).items()
                if isinstance(v, dict) and set(v.get("outcomes", {})) - {"Succeeded"}]
    errors = [f"{VARIANTS[k]}{'' if s == 'error' else ', ' + s}: error: {v if s == 'error' else v['error']}"
              for k in keys for s, v in results.get(k, {}).items()
              if s == "error" or (isinstance(v, dict) and "error" in v)]
    report.print(table)
    writes = Table(title=f"API writes per step by verb and resource, {size['workflows']} workflows x 5 steps")
    writes.add_column("request")
    for key in keys:
        writes.add_column(VARIANTS[key], justify="right")
    per_step = {k: _get(results, k, ("throughput", "writes")) for k in keys}
    per_step = {k: v if isinstance(v, dict) else {} for k, v in per_step.items()}
    for name in sorted({n for v in per_step.values() for n in v}):
        writes.add_row(name, *(_cell(per_step[k].get(name), "{:.2f}") for k in keys))
    report.print(writes)
    phases = Table(title=f"Where a step of 1 chain of {size['length']} goes: phase by phase, from the "
                   "audit log (peer_phases.py)")
    phases.add_column("phase")
    for key in keys:
        phases.add_column(VARIANTS[key], justify="right")
    for label, path, fmt in peer_phases.rows():
        phases.add_row(label, *(_cell(_get(results, k, ("chain", *path)), fmt) for k in keys))
    report.print(phases)
    if not results["quick"]:
        targets = Table(title="DESIGN.md, Against the peers, judged from this run (peer_targets.py)")
        for column in ("target", "verdict", "figures"):
            targets.add_column(column)
        for row in peer_targets.verdicts(results):
            targets.add_row(*row)
        report.print(targets)
    failed = [f"Not every workflow succeeded: {'; '.join(outcomes)}"] if outcomes else []
    for note in NOTES + failed + errors:
        report.print(note)


NOTES = [
    "Reaction: a step's pod ended (kwok's last write to its status) -> the next step's child created "
    "(stepflow: its Job, which the Job controller then turns into a pod; Argo: the pod itself; Tekton: the "
    "TaskRun, which its controller turns into a pod), both from the API server's audit log. End to end: "
    "steps / (first child created -> last pod ended).",
    peer_phases.NOTE,
    "Argo tuned: DEFAULT_REQUEUE_TIME=1s (Argo's own dev setup, its Makefile) and --qps=500 --burst=1000 "
    "(docs/scaling.md: raise --qps/--burst; the values of the tier's controller-manager); workers at their "
    "default of 32. Argo defaults: 10 s requeue, 20 requests/s, burst 30. Both: leader election off.",
    "Tekton: high availability off, -threads-per-controller=32 (knative's default is 2), client rate "
    "limit 250/500 (Tekton doubles it), disable-creds-init, default-max-matrix-combinations-count=1000, "
    "every config/config-*.yaml installed, no webhook. Tekton has no per-run concurrency cap: its fan-out "
    "(one matrix of all the copies) runs every TaskRun at once.",
    "The fan-out: stepflow, 4 matrix steps of a quarter of the copies each, run in parallel, "
    "maxConcurrency 50 (its matrix stops at 256 copies a step); Argo, withSequence with the workflow's "
    "parallelism 50. Wall time: the create sent -> the workflow seen finished (polled every 0.25 s). "
    "The largest object: the JSON of the finished Workflow / PipelineRun as the API server returns it.",
    "The 5-step workflows are one DAG in every controller: a and b, then c, then d and e. Memory runs "
    "first, on a freshly started controller (after one one-step workflow that checks it works).",
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small smoke run: chain 5, 20 workflows, ...")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="of " + ", ".join(VARIANTS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="of " + ", ".join(SCENARIOS))
    parser.add_argument("--build-only", action="store_true", help="build the peers' controllers and stop")
    args = parser.parse_args()
    from kube.peers import ARGO, TEKTON, ensure_argo, ensure_tekton

    if args.build_only:
        print(ensure_argo(), ensure_tekton(), sep="\n")
        return 0
    keys = [k for k in VARIANTS if k in args.variants.split(",")]
    scenarios = [s for s in SCENARIOS if s in args.scenarios.split(",")]
    console = Console()
    results: dict[str, Any] = {"variants": keys, "sizes": sizes(args.quick), "quick": args.quick,
                               "argo_version": ARGO.version, "tekton_version": TEKTON.version,
                               "cores": figures.machine()["cores"], "commit": figures.commit()}
    with contextlib.ExitStack() as stack:
        plane, credentials = control_plane(stack)
        audit = AuditLog(plane)
        found = controllers(plane, credentials, keys)
        for key in keys:
            console.print(f"[{VARIANTS[key]}]")
            controller = found[key]
            results[key] = ({"error": controller} if isinstance(controller, str) else
                            run_variant(plane, audit, controller, key, results["sizes"], scenarios, console))
    report = figures.Report(console)
    tables(report, results)
    if args.quick:
        report.print("--quick: scaled-down runs (the sizes are in each row), not the figures of record")
    report.write(args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
