"""Commands that read or steer Workflows in a cluster, like a kubectl plugin.

They use the current kubeconfig context (``--kubeconfig``, ``--context``),
its namespace unless ``-n`` is given, and ``-A`` for all namespaces.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stepflow.fan_rows import copies_text, is_whole, phase_counts, status_lines
from stepflow.graph import to_dot, to_mermaid
from stepflow.matrix import expand
from stepflow.plan import compile_workflow
from stepflow.printable import printable
from stepflow.spec import API_GROUP, API_VERSION, RERUN_FAILED_ANNOTATION, SpecError
from stepflow.status import (
    expansions_from_status,
    group_label,
    human_duration,
    outputs_text,
    parse_time,
    phase_label,
    rfc3339,
)
from stepflow.step_types import Catalog
from stepflow.timeline import PHASE_STYLES, chart_width, render_timeline, timeline_svg

if TYPE_CHECKING:  # the client and kopf load only when a cluster command runs, not for `run`
    from stepflow.operator.api import Api

WORKFLOWS = f"/apis/{API_GROUP}/{API_VERSION}"
IN_PROGRESS = ("Pending", "Running", "Suspended")


def register(commands: argparse._SubParsersAction) -> None:
    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
                needs_name: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("--kubeconfig", help="path to the kubeconfig file")
        parser.add_argument("--context", help="kubeconfig context to use")
        parser.add_argument("-n", "--namespace", help="namespace (default: the context's)")
        if needs_name:
            parser.add_argument("name", metavar="NAME")
        parser.set_defaults(handler=_api_errors_as_messages(handler))
        return parser

    listing = command("list", cmd_list, "list workflows with phase, progress, age and duration", False)
    listing.add_argument("-A", "--all-namespaces", action="store_true",
                         help="every namespace the identity may list (default: -n, else the context's)")
    status = command("status", cmd_status, "show each step: group, phase, times, Job and message")
    status.add_argument("-w", "--watch", action="store_true", help="update until the workflow ends")
    status.add_argument("--all-copies", action="store_true", dest="every_copy",
                        help="list every copy of a matrix step (default: at most ten rows of them)")
    timeline = command("timeline", cmd_timeline, "Gantt chart of the run, one bar per step")
    timeline.add_argument("--svg", metavar="FILE", help="also write the chart as SVG")
    timeline.add_argument("--all-copies", action="store_true", dest="every_copy",
                          help="a bar for every copy of a matrix step (default: at most ten rows of them)")
    logs = command("logs", cmd_logs, "print a step's pod logs")
    logs.add_argument("step", metavar="STEP")
    logs.add_argument("-f", "--follow", action="store_true")
    command("suspend", cmd_suspend, "start no new steps; running ones finish")
    command("resume", cmd_resume, "let a suspended workflow go on")
    rerun = command("rerun", cmd_rerun, "start a new run of an unchanged, finished workflow")
    rerun.add_argument("--failed", action="store_true",
                       help="re-run only the failed and skipped steps, keeping successes")
    graph = command("graph", cmd_graph, "the workflow's graph, coloured by step phase")
    graph.add_argument("-o", "--output", choices=("mermaid", "dot"), default="mermaid")


# --- connection --------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]


def _api_errors_as_messages(handler: Handler) -> Handler:
    """An unreachable or refusing API server is a one-line error and exit 1, not a traceback."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        import urllib3  # here, not at the top: `stepflow run` must not pay for the client
        from kubernetes.client.exceptions import ApiException

        from stepflow.operator.runtime.api import Conflict, Forbidden, Invalid, NotFound

        try:
            return handler(args)
        except (Conflict, Forbidden, Invalid, NotFound) as exc:  # already translated by api.call
            raise SystemExit(f"error: the API server refused: {str(exc)[:300]}") from None
        except ApiException as exc:
            raise SystemExit(f"error: the API server answered {exc.status} {exc.reason}: "
                             f"{(exc.body or '').strip()[:300]}") from None
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise SystemExit(f"error: cannot reach the API server: {reason}") from None

    return run


def connect(args: argparse.Namespace) -> tuple[Api, str]:
    """An API handle and the namespace to use, the way kubectl picks them."""
    from kubernetes import client, config

    from stepflow.operator.api import Api

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=args.kubeconfig, context=args.context,
                                client_configuration=configuration)
        _, active = config.list_kube_config_contexts(config_file=args.kubeconfig)
        if args.context:
            contexts, _ = config.list_kube_config_contexts(config_file=args.kubeconfig)
            active = next((c for c in contexts if c["name"] == args.context), active)
        default_namespace = (active or {}).get("context", {}).get("namespace") or "default"
    except config.ConfigException as exc:
        # In-cluster credentials are the fallback only when no kubeconfig was asked for, and a
        # failed fallback reports the kubeconfig's problem (not "Service host/port is not set").
        if args.kubeconfig or args.context:
            raise SystemExit(f"error: {exc}") from None
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            raise SystemExit(f"error: {exc} (and not running in a cluster)") from None
        default_namespace = "default"
    return Api(client.ApiClient(configuration)), args.namespace or default_namespace


def _workflow_path(namespace: str, name: str) -> str:
    return f"{WORKFLOWS}/namespaces/{namespace}/workflows/{name}"


def get_workflow(api: Api, namespace: str, name: str) -> dict[str, Any]:
    from stepflow.operator.runtime.api import NotFound

    try:
        return api.request("GET", _workflow_path(namespace, name))
    except NotFound:
        raise SystemExit(f'error: workflow "{name}" not found in namespace "{namespace}"') from None


def patch_workflow(api: Api, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    from stepflow.operator.runtime.api import NotFound

    try:
        return api.request("PATCH", _workflow_path(namespace, name), body=patch,
                           content_type="application/merge-patch+json")
    except NotFound:
        raise SystemExit(f'error: workflow "{name}" not found in namespace "{namespace}"') from None


# --- list / status -----------------------------------------------------------------------------

def _age(timestamp: str | None, now: float) -> str:
    start = parse_time(timestamp)
    return human_duration(now - start) if start is not None else ""


def cmd_list(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    scope = "" if args.all_namespaces else f"/namespaces/{namespace}"
    path = f"{WORKFLOWS}{scope}/workflows"
    items = api.request("GET", path).get("items") or []
    now = time.time()
    table = Table(box=None, pad_edge=False)
    for column in ("NAMESPACE", "NAME", "PHASE", "PROGRESS", "AGE", "DURATION"):
        table.add_column(column, overflow="fold")  # a narrow terminal folds a name, never cuts it
    for item in sorted(items, key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"])):
        status = item.get("status") or {}
        phase = status.get("phase", "Pending")
        table.add_row(item["metadata"]["namespace"], item["metadata"]["name"],
                      Text(phase, style=PHASE_STYLES.get(phase, "")), status.get("progress", ""),
                      _age(item["metadata"].get("creationTimestamp"), now), _duration(status, now))
    if not items:
        print(f"No workflows found in {'any namespace' if args.all_namespaces else namespace}.",
              file=sys.stderr)
        return 0
    output_console().print(table)
    return 0


def output_console() -> Console:
    """The terminal's console; on a pipe or a file, plain rows as wide as their content, as
    `kubectl get` prints them, so that nothing is cut to a guessed width."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=100_000, color_system=None, highlight=False)


def _duration(status: dict[str, Any], now: float) -> str:
    start = parse_time(status.get("startedAt"))
    if start is None:
        return ""
    return human_duration((parse_time(status.get("finishedAt")) or now) - start)


def status_view(workflow: dict[str, Any], now: float, every_copy: bool = False) -> Group:
    """Steps by group: type, phase, start, duration, Job and message; failures with their exit code.

    A matrix step (M6) is a row of its own, its phase that of the whole and "N copies" in the
    JOB column, with its copies under it, each with its values. Beyond ten copies only the failed
    and running ones and the first others are listed, and a row counts the rest by phase
    (:func:`~stepflow.fan_rows.status_lines`); ``every_copy`` (``--all-copies``) lists them all.
    """
    status = workflow.get("status") or {}
    meta = workflow["metadata"]
    title = (f"{meta['namespace']}/{meta['name']}: {status.get('phase', 'Pending')} "
             f"{status.get('progress', '')} {_duration(status, now)} - {status.get('message', '')}")
    # The title on a line of its own: as a table title it wrapped at the table's width, mid-message.
    table = Table(box=None, pad_edge=False)
    for column in ("GROUP", "STEP", "TYPE", "PHASE", "STARTED", "DURATION", "JOB", "MESSAGE"):
        table.add_column(column, overflow="fold")  # folded on a narrow terminal, never cut
    for line in status_lines(status.get("steps") or {}, every_copy):
        if line.kind == "more":
            table.add_row("", Text(line.label, style="dim"), "", Text(phase_counts(line.hidden), style="dim"),
                          "", "", "", Text("--all-copies lists them", style="dim"))
            continue
        entry = line.entry
        phase = entry.get("phase", "Pending")
        start, end = parse_time(entry.get("startedAt")), parse_time(entry.get("finishedAt"))
        took = human_duration((end or now) - start) if start is not None else ""
        started = (rfc3339(start) or "")[11:19]
        job = copies_text(entry["copies"]) if line.kind == "whole" else entry.get("jobName", "")
        table.add_row(group_label(entry), Text(printable(line.label)),
                      Text(printable(entry.get("type") or "")),
                      Text(phase_label(entry), style=PHASE_STYLES.get(phase, "")),
                      started, took, job, Text(printable(_message(entry))))
    return Group(Text(printable(title)), table)  # Text: never markup; printable: no escape sequence


def _message(entry: dict[str, Any]) -> str:
    """A step's message with its reason, exit code, last line of termination message, outputs."""
    phase = entry.get("phase", "Pending")
    message = entry.get("message", "")
    if entry.get("reason") and phase not in ("Succeeded", "Running"):
        message = f"{entry['reason']}: {message}" if message else entry["reason"]
    if entry.get("exitCode") not in (None, 0) and f"code {entry['exitCode']}" not in message:
        message = f"exit code {entry['exitCode']}; {message}"
    if entry.get("terminationMessage"):
        message += f" | {entry['terminationMessage'].splitlines()[-1]}"
    if entry.get("outputs"):
        message = f"outputs: {outputs_text(entry)}" + (f"; {message}" if message else "")
    return message


def cmd_status(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    console = output_console()
    workflow = get_workflow(api, namespace, args.name)
    view = functools.partial(status_view, every_copy=args.every_copy)
    if not args.watch:
        console.print(view(workflow, time.time()))
        return 0
    with Live(view(workflow, time.time()), console=console, refresh_per_second=4) as live:
        while (workflow.get("status") or {}).get("phase", "Pending") in IN_PROGRESS:
            time.sleep(1.0)
            workflow = get_workflow(api, namespace, args.name)
            live.update(view(workflow, time.time()))
    return 0


# --- timeline / graph / logs -------------------------------------------------------------------

def cmd_timeline(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    status = get_workflow(api, namespace, args.name).get("status") or {}
    now = time.time()
    console = Console()
    width = chart_width(status, console.width, args.every_copy)
    console.print(render_timeline(status, width, now=now, every_copy=args.every_copy))
    if args.svg:
        with open(args.svg, "w", encoding="utf-8") as handle:
            handle.write(timeline_svg(status, now=now, every_copy=args.every_copy))
        console.print(f"wrote {args.svg}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    workflow = get_workflow(api, namespace, args.name)
    try:
        plan = compile_workflow({k: workflow[k] for k in ("apiVersion", "kind", "metadata", "spec")},
                                Catalog.kept(workflow.get("status")))  # the types its run resolved
    except SpecError as exc:
        for error in exc.errors:
            print(f"{args.name}: {error}", file=sys.stderr)
        return 1
    status = workflow.get("status") or {}
    plan = expand(plan, expansions_from_status(status))  # M4: the copies a run made of a list from an output
    phases = {name: entry.get("phase", "Pending") for name, entry in (status.get("steps") or {}).items()}
    print((to_dot if args.output == "dot" else to_mermaid)(plan, phases), end="")
    return 0


def _attempt_order(pod: dict[str, Any]) -> tuple[str, bool]:
    """Sort key of a Job's pods, the last attempt last.

    ``creationTimestamp`` has whole seconds, so quick retries tie. Every attempt before the
    last one failed (or there would be no retry), so among equals a pod that did not fail is
    the newest one.
    """
    phase = (pod.get("status") or {}).get("phase")
    return pod["metadata"].get("creationTimestamp") or "", phase != "Failed"


def newest_pod(api: Api, namespace: str, job: str) -> str | None:
    """The name of the Job's last attempt's pod: the one whose log tells what happened."""
    pods = api.job_pods(namespace, job)
    return max(pods, key=_attempt_order)["metadata"]["name"] if pods else None


def log_tail(api: Api, namespace: str, job: str, lines: int, limit_bytes: int = 256 * 1024) -> str:
    """The last ``lines`` lines of the step container's log, for the web UI's step panel."""
    pod = newest_pod(api, namespace, job)
    if pod is None:
        return f"(Job {job} has no pods: they may have been deleted)"
    query = {"container": "step", "tailLines": str(lines), "limitBytes": str(limit_bytes)}
    return "".join(api.stream(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query=query,
                              timeout=(5, 30)))


def cmd_logs(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    entry = ((get_workflow(api, namespace, args.name).get("status") or {}).get("steps") or {}).get(args.step)
    if entry is None:
        raise SystemExit(f'error: workflow "{args.name}" has no step "{args.step}"')
    if is_whole(entry):  # M2: the copies ran, each with its own Job
        names = f"{args.step}-0" + (f" to {args.step}-{entry['copies'] - 1}" if entry["copies"] > 1 else "")
        raise SystemExit(f'error: step "{args.step}" is a matrix step of {copies_text(entry["copies"])}, '
                         f"each with logs of its own: name one, {names}")
    if not entry.get("jobName"):
        raise SystemExit(f'error: step "{args.step}" has not started ({entry.get("phase", "Pending")})')
    newest = newest_pod(api, namespace, entry["jobName"])
    if newest is None:
        raise SystemExit(f"error: Job {entry['jobName']} has no pods (they may have been deleted)")
    path = f"/api/v1/namespaces/{namespace}/pods/{newest}/log"
    for chunk in api.stream(path, query={"container": "step", "follow": str(args.follow).lower()}):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


# --- steering ----------------------------------------------------------------------------------

def cmd_suspend(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    patch_workflow(api, namespace, args.name, {"spec": {"suspend": True}})
    print(f"workflow {args.name} suspended: no new steps start; running steps finish")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    api, namespace = connect(args)
    patch_workflow(api, namespace, args.name, {"spec": {"suspend": False}})
    print(f"workflow {args.name} resumed")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """A new ``spec.runToken`` bumps the generation, so the operator starts a fresh run."""
    api, namespace = connect(args)
    workflow = get_workflow(api, namespace, args.name)
    phase = (workflow.get("status") or {}).get("phase")
    if phase in IN_PROGRESS:
        print(f"error: workflow {args.name} is {phase}; wait for it to finish (or delete it) "
              "before starting a new run", file=sys.stderr)
        return 1
    token = f"{time.time():.3f}"
    patch: dict[str, Any] = {"spec": {"runToken": token}}
    patch["metadata"] = {"annotations": {RERUN_FAILED_ANNOTATION: token if args.failed else None}}
    patch_workflow(api, namespace, args.name, patch)
    kept = " keeping successful steps" if args.failed else ""
    print(f"workflow {args.name}: new run requested{kept} (runToken {token})")
    return 0
