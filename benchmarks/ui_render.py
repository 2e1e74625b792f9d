"""How quickly the web UI draws a workflow and shows a change, in headless Chromium.

    python benchmarks/ui_render.py [--quick] [--json PATH] [--markdown PATH]

On the real control plane of the testing tier (tests/kube/), with ``stepflow ui`` and Debian's
Chromium on the same 2 cores. No operator runs: the benchmark writes each Workflow's status
itself through the status subresource, so the figures are the UI's alone.

- render: from the start of the page's navigation to the graph and timeline being drawn
  (``window.stepflowUI.renderedAt``), for 10, 100 and 1,000 steps in groups of 10 (3 loads
  each), and for a 256-copy matrix step between two steps, drawn as one box (M6); "layout" is
  elkjs's share, in its web worker.
- open: from the click on the 256-copy box to its 256 copies being listed, the graph laid out
  again with the open box.
- patch: how long the API server takes to answer a status PATCH of one step, per size: the
  floor under every update of a workflow that large, whoever watches it.
- update: from the PATCH of one step's phase being sent to the page having recoloured that
  step, for 1,000 steps. The baseline is a plain watch on the same API server (what
  ``kubectl get -w`` sees): the delay no client of the watch can beat. Most of it is the API
  server's own work on a 1,000-step object (about a second on these machines); the UI's share is
  the difference, per change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import figures  # noqa: E402
from kube.browser import PageWatch, browser, grouped_workflow, pending_status, ui_server  # noqa: E402
from kube.build import ensure_assets  # noqa: E402
from kube.controlplane import ControlPlane  # noqa: E402
from kube.realcluster import Kube, wait_for, watch_events  # noqa: E402
from stepflow.status import rfc3339  # noqa: E402

NAMESPACE = "ui-bench"
COPIES = 256


def matrix_workflow(name: str) -> dict[str, Any]:
    """A 16 x 16 matrix step between two steps: 258 steps, three nodes in the graph."""
    sixteen = [str(i) for i in range(16)]
    steps = [{"name": "before", "script": "true"},
             {"name": "fan", "script": "true", "matrix": {"x": sixteen, "y": sixteen}},
             {"name": "after", "script": "true"}]
    return {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"defaults": {"image": "alpine:3.20"}, "steps": steps}}


def matrix_status() -> dict[str, Any]:
    """Its status as a run writes it: the copies' entries and the matrix step's own."""
    steps: dict[str, Any] = {"before": {"index": 0, "group": 0, "phase": "Pending"}}
    for i in range(COPIES):
        steps[f"fan-{i}"] = {"index": 1 + i, "group": 1, "phase": "Pending", "matrixOf": "fan",
                             "matrix": {"x": str(i // 16), "y": str(i % 16)}}
    steps["fan"] = {"index": 1, "group": 1, "phase": "Pending", "copies": COPIES}
    steps["after"] = {"index": 1 + COPIES, "group": 2, "phase": "Pending"}
    return {"phase": "Running", "startedAt": rfc3339(time.time()), "steps": steps}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def render_times(page: Any, url: str, loads: int) -> list[tuple[float, float]]:
    """(render ms, layout ms) of each fresh load of the page."""
    times = []
    for _ in range(loads):
        page.goto("about:blank")
        page.goto(url)
        wait_for(
            lambda: page.evaluate("document.body.dataset.loaded === 'workflow'"), timeout=120, interval=0.02
        )
        times.append(
            (page.evaluate("window.stepflowUI.renderedAt"), page.evaluate("window.stepflowUI.layoutMs"))
        )
    return times


def open_times(page: Any, url: str, loads: int) -> list[float]:
    """ms from the click on the matrix step's box to its copies being listed, each on a fresh load."""
    times = []
    for _ in range(loads):
        page.goto("about:blank")
        page.goto(url)
        wait_for(lambda: page.evaluate("document.body.dataset.loaded === 'workflow'"), timeout=120)
        started = time.monotonic()
        page.click('g.node[data-step="fan"]')
        wait_for(lambda: page.evaluate(f"document.querySelectorAll('.copies .copy').length === {COPIES}"),
                 timeout=60, interval=0.01)
        times.append((time.monotonic() - started) * 1000)
    return times


def patch_times(kube: Kube, name: str, count: int) -> list[float]:
    """How long the API server takes to answer a PATCH of one step's phase (ms): the cost of
    every status write of a workflow of this size, before any client hears of it."""
    times = []
    for n in range(count):
        started = time.time()
        kube.patch(
            "workflows",
            name,
            {"status": {"steps": {"s1": {"phase": ("Pending", "Running")[n % 2]}}}},
            "status",
        )
        times.append((time.time() - started) * 1000)
    return times


def update_latencies(
    kube: Kube, page: Any, name: str, size: int, changes: int
) -> tuple[list[float], list[float]]:
    """(page ms, plain watch ms) after each PATCH that changes one step's phase."""
    arrivals: dict[str, float] = {}
    stop = threading.Event()

    def plain_watch() -> None:
        selector = f"metadata.name={name}"
        for event in watch_events(kube, "workflows", stop, field_selector=selector):
            arrivals.setdefault(event["object"]["metadata"]["resourceVersion"], time.time())

    watcher = threading.Thread(target=plain_watch, daemon=True)
    watcher.start()
    time.sleep(1)  # the plain watch is open
    page_ms, watch_ms = [], []
    for n in range(changes):
        step = f"s{(n * 97) % size}"
        phase = "Running" if n % 2 == 0 else "Succeeded"
        page.evaluate(f"delete window.stepflowUI.applied['{step}']")
        written = time.time()  # before the PATCH is sent: the figures include its round trip
        answer = kube.patch("workflows", name, {"status": {"steps": {step: {"phase": phase}}}}, "status")
        version = answer["metadata"]["resourceVersion"]
        shown = f"window.stepflowUI.applied['{step}']?.phase === '{phase}'"
        wait_for(lambda shown=shown: page.evaluate(shown), timeout=30, interval=0.005)
        page_ms.append((page.evaluate(f"window.stepflowUI.applied['{step}'].at") / 1000 - written) * 1000)
        wait_for(lambda version=version: version in arrivals, timeout=30, interval=0.005)
        watch_ms.append((arrivals[version] - written) * 1000)
        time.sleep(0.3)  # one change at a time, as a run's steps end
    stop.set()
    return page_ms, watch_ms


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer loads and changes (a smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    args = parser.parse_args()
    loads, changes = (1, 5) if args.quick else (3, 30)
    console = Console()
    results: dict[str, Any] = {"render": {}, "update": {}, "patch": {}, "open": []}
    with contextlib.ExitStack() as stack:
        console.print("starting the real control plane (tests/kube/) …")
        plane = stack.enter_context(
            ControlPlane(ensure_assets(), Path(tempfile.mkdtemp(prefix="stepflow-ui-bench-")))
        )
        plane.kubectl("apply", "-k", str(ROOT / "deploy"))
        plane.wait_established("workflows.stepflow.dev")
        kube = Kube(plane, NAMESPACE)
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        for size in (10, 100, 1000):
            kube.create(grouped_workflow(f"w{size}", size))
            kube.patch("workflows", f"w{size}", {"status": pending_status(size)}, "status")
            results["patch"][size] = patch_times(kube, f"w{size}", 10)
        kube.create(matrix_workflow("matrix"))
        kube.patch("workflows", "matrix", {"status": matrix_status()}, "status")
        ui = stack.enter_context(ui_server(plane.kubeconfig, plane.workdir / "ui.log", "-n", NAMESPACE))
        chromium = stack.enter_context(browser())
        page = chromium.new_page(viewport={"width": 1440, "height": 900})
        watch = PageWatch(page)
        for size in (10, 100, 1000):
            console.print(f"rendering {size} steps …")
            times = render_times(page, f"{ui.url}#/w/{NAMESPACE}/w{size}", loads)
            results["render"][size] = {"render_ms": [t[0] for t in times], "layout_ms": [t[1] for t in times]}
        console.print(f"rendering a {COPIES}-copy matrix step, and opening its box …")
        times = render_times(page, f"{ui.url}#/w/{NAMESPACE}/matrix", loads)
        results["render"][f"{COPIES} copies"] = {"render_ms": [t[0] for t in times],
                                                 "layout_ms": [t[1] for t in times]}
        results["open"] = open_times(page, f"{ui.url}#/w/{NAMESPACE}/matrix", loads)
        console.print(f"changing {changes} steps of the 1,000-step workflow, one at a time …")
        page.goto(f"{ui.url}#/w/{NAMESPACE}/w1000")
        wait_for(lambda: page.evaluate("document.body.dataset.loaded === 'workflow'"), timeout=120)
        page_ms, watch_ms = update_latencies(kube, page, "w1000", 1000, changes)
        results["update"] = {"page_ms": page_ms, "watch_ms": watch_ms}
        results["browser_errors"] = watch.errors
        results["foreign_requests"] = watch.foreign_requests()
    printed = figures.Report(console)
    report(printed, results)
    printed.write(args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if results["browser_errors"] or results["foreign_requests"] else 0


def report(console: figures.Report, results: dict[str, Any]) -> None:
    table = Table(title="stepflow ui in headless Chromium (real control plane, 2 shared cores)")
    for column in ("what", "median", "min", "max", "runs"):
        table.add_column(column)
    for size, measured in results["render"].items():
        for label, key in (("render", "render_ms"), ("  of it layout (elkjs)", "layout_ms")):
            values = measured[key]
            what = f"{size} steps" if isinstance(size, int) else f"a matrix step of {size}, one box"
            table.add_row(
                f"{label}, {what}" if label == "render" else label,
                f"{statistics.median(values):.0f} ms",
                f"{min(values):.0f} ms",
                f"{max(values):.0f} ms",
                str(len(values)),
            )
    if results["open"]:
        values = results["open"]
        table.add_row(
            f"open the box: {COPIES} copies listed, the graph laid out again",
            f"{statistics.median(values):.0f} ms",
            f"{min(values):.0f} ms",
            f"{max(values):.0f} ms",
            str(len(values)),
        )
    for size, values in results["patch"].items():
        table.add_row(
            f"a status PATCH answered by the API server, {size} steps",
            f"{statistics.median(values):.0f} ms",
            f"{min(values):.0f} ms",
            f"{max(values):.0f} ms",
            str(len(values)),
        )
    for label, key in (
        ("update shown by the page, 1,000 steps", "page_ms"),
        ("baseline: the same change seen by a plain watch", "watch_ms"),
    ):
        values = results["update"][key]
        table.add_row(
            label,
            f"{statistics.median(values):.0f} ms",
            f"{min(values):.0f} ms",
            f"{max(values):.0f} ms (p90 {percentile(values, 0.9):.0f})",
            str(len(values)),
        )
    own = [
        page - watch
        for page, watch in zip(results["update"]["page_ms"], results["update"]["watch_ms"], strict=True)
    ]
    table.add_row(
        "the UI's own share (page - watch, per change)",
        f"{statistics.median(own):.0f} ms",
        f"{min(own):.0f} ms",
        f"{max(own):.0f} ms (p90 {percentile(own, 0.9):.0f})",
        str(len(own)),
    )
    console.print(table)
    if results["browser_errors"] or results["foreign_requests"]:
        console.print(
            f"[red]browser errors: {results['browser_errors']}; "
            f"requests off 127.0.0.1: {results['foreign_requests']}[/red]"
        )


if __name__ == "__main__":
    sys.exit(main())
