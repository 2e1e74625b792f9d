"""Commands that need no cluster: ``validate``, ``plan`` and ``run``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from stepflow.cli import plan_view
from stepflow.cli.options import OncePerName, pool_limit, whole_number
from stepflow.cli.run_view import live_table, speedup_line, summary_table
from stepflow.cli.step_types import add_types_option
from stepflow.cluster_refusals import cluster_errors
from stepflow.engine import SUCCEEDED
from stepflow.graph import to_dot, to_mermaid
from stepflow.local import LocalRun, unsupported_fields
from stepflow.plan import Plan
from stepflow.printable import printable
from stepflow.spec import FieldError, SpecError
from stepflow.timeline import chart_width, render_timeline
from stepflow.workflow_files import file_plans, load_plan

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def register(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser("validate", help="check Workflow files; exit 1 on any error")
    validate.add_argument("files", nargs="+", metavar="FILE")
    add_types_option(validate)
    validate.set_defaults(handler=cmd_validate)

    plan = commands.add_parser("plan", help="show the groups, prerequisites and ideal speedup")
    plan.add_argument("file", metavar="FILE")
    plan.add_argument("-o", "--output", choices=("text", "json", "mermaid", "dot"), default="text")
    plan.add_argument("--name", help="the Workflow to plan, in a file that holds several")
    add_types_option(plan)
    plan.add_argument("--durations", metavar="NAME=SECONDS,...|FILE.json",
                      help="per-step durations for the speedup estimate (else estimatedSeconds)")
    plan.set_defaults(handler=cmd_plan)

    run = commands.add_parser("run", help="run a workflow locally, each step as a process")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--name", help="the Workflow to run, in a file that holds several")
    add_types_option(run)
    run.add_argument("--max-concurrency", type=whole_number(1), metavar="N",
                     help="override spec.maxConcurrency")
    run.add_argument("--pool", action=OncePerName, type=pool_limit, default=[], metavar="NAME=LIMIT",
                     help="the limit of a StepPool the steps name (repeatable, once per pool); other "
                          "pools are unlimited")
    run.add_argument("--report", metavar="PATH", help="write the final status document as JSON")
    run.add_argument("--logs", metavar="DIR", help="per-step logs (default stepflow-logs/NAME)")
    run.add_argument("--timeline", action="store_true", help="print a Gantt chart at the end")
    run.add_argument("--all-copies", action="store_true", dest="every_copy",
                     help="list every copy of a matrix step at the end (default: at most ten rows of them)")
    run.set_defaults(handler=cmd_run)


def _print_errors(source: str, error: SpecError) -> None:
    for item in error.errors:  # a value quoted from the file may hold an escape sequence
        print(printable(f"{source}: {item}"), file=sys.stderr)


# --- validate ----------------------------------------------------------------------------------

def cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for file in args.files:
        try:
            plans, errors = file_plans(file, args.types)
        except SpecError as exc:  # unreadable, or not YAML
            plans, errors = [], exc.errors
        if errors:
            _print_errors(file, SpecError(errors))
            status = EXIT_FAILED
        for prefix, plan in plans:
            refused = cluster_errors(plan)  # validate answers for the cluster, as `kubectl apply` would
            if refused:
                _print_errors(file, SpecError(FieldError(prefix + e.path, e.message) for e in refused))
                status = EXIT_FAILED
                continue
            print(f"{file}: {plan.spec.name}: valid ({_count(len(plan.steps), 'step')} in "
                  f"{_count(len(plan.groups), 'group')})")
    return status


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- plan --------------------------------------------------------------------------------------

def cmd_plan(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.file, args.name, args.types)
        durations = plan_view.durations(plan, args.durations)
    except SpecError as exc:
        _print_errors(args.file, exc)
        return EXIT_FAILED
    if args.output == "json":
        document = plan.as_json()
        if durations:
            document["estimate"] = plan_view.estimate(plan, durations)
        print(json.dumps(document, indent=2))
    elif args.output == "mermaid":
        print(to_mermaid(plan), end="")
    elif args.output == "dot":
        print(to_dot(plan), end="")
    else:
        plan_view.print_plan_text(plan, durations)
    return EXIT_OK


# --- run ---------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.file, args.name, args.types)
    except SpecError as exc:
        _print_errors(args.file, exc)
        return EXIT_FAILED
    if plan.spec.suspend:  # honoured, it would start nothing and wait forever
        print(f"{args.file}: spec.suspend: the workflow is suspended, so nothing would start; "
              "set it to false to run it locally", file=sys.stderr)
        return EXIT_FAILED
    console = RunConsole()
    pools = dict(args.pool)
    for note in unsupported_fields(plan) + _pool_notes(plan, pools):
        console.print(f"[yellow]note:[/yellow] {note}")
    log_dir = Path(args.logs or Path("stepflow-logs") / plan.spec.name)
    problem = _unwritable(log_dir, args.report)
    if problem:  # found now, not after the whole run
        print(f"stepflow run: {problem}", file=sys.stderr)
        return EXIT_FAILED
    _hang_up_with_parent()
    run, interrupted = asyncio.run(_drive(plan, args, log_dir, console))
    status = run.status()
    if args.report:
        Path(args.report).write_text(json.dumps(status, indent=2) + "\n")
    with contextlib.suppress(OSError):  # the terminal is gone (SIGHUP): report and exit code count
        _print_outcome(console, status, args, log_dir)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if status["phase"] == SUCCEEDED else EXIT_FAILED


def _pool_notes(plan: Plan, limits: dict[str, int]) -> list[str]:
    """R2 locally: a pool without --pool is unlimited, said once; a --pool no step uses is a typo."""
    notes = []
    unlimited = [p for p in plan.pools if p not in limits]
    if unlimited:
        names = ", ".join(f'"{p}"' for p in unlimited)
        notes.append(f"StepPool {names} has no limit in a local run (give one with --pool NAME=LIMIT)")
    unused = [p for p in limits if p not in plan.pools]
    if unused:
        notes.append(f"--pool {', '.join(unused)}: no step of this workflow uses that pool")
    return notes


def _print_outcome(console: Console, status: dict[str, Any], args: argparse.Namespace, log_dir: Path) -> None:
    console.print(summary_table(status, args.every_copy))
    console.print(speedup_line(status), highlight=False)
    if args.timeline:
        width = chart_width(status, console.width, args.every_copy)
        console.print(render_timeline(status, width, every_copy=args.every_copy))
    console.print(f"logs: {log_dir}/", highlight=False)


class RunConsole(Console):
    """The run's standard output, which its reader may close at any moment (``| head -3``): from
    then on the run carries on silently, runs its finally steps and writes its report, where
    rich would raise SystemExit from whichever line tried to print."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more is rendered
        with contextlib.suppress(OSError):  # what is still buffered goes nowhere, at exit too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)


# Each ends the run as Ctrl-C does: children killed, steps Cancelled/Skipped, report written.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _hang_up_with_parent() -> None:
    """Linux: SIGHUP when the parent dies (a killed CI runner, an ssh session that drops), so
    that the run stops its steps instead of leaving them to init."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGHUP)  # PR_SET_PDEATHSIG


async def _drive(plan: Plan, args: argparse.Namespace, log_dir: Path, console: Console):
    live_view = console.is_terminal
    run = LocalRun(plan, log_dir=log_dir, max_concurrency=args.max_concurrency, pools=dict(args.pool),
                   listener=None if live_view else _event_printer(console))
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        run.interrupt()

    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_sigint)
    # Title, header, separator, the "not shown" line and the progress bar take six rows.
    live = Live(get_renderable=lambda: live_table(run, max(console.height - 6, 3)), console=console,
                refresh_per_second=8, transient=True) if live_view else None
    try:
        if live is not None:
            live.start()
        await run.run()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        if live is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
                live.stop()
    return run, interrupted


def _unwritable(log_dir: Path, report: str | None) -> str:
    """Why the logs or the report could not be written, or "" if they can."""
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the log directory {log_dir}: {exc.strerror}"
    if report:
        try:
            Path(report).open("a").close()
        except OSError as exc:
            return f"cannot write the report {report}: {exc.strerror}"
    return ""


def _event_printer(console: Console):
    """Plain transition lines for logs and pipes, where a live view would be noise."""
    def on_event(run: LocalRun, event: str, name: str) -> None:
        if event == "expanded":  # M4: the step is its copies from now on
            extra = f" ({len(run.plan.matrices[name][1])} copies)"
        else:
            state = run.states[name]
            extra = f" ({state.reason}: {printable(state.message)})" if event in (
                "failed", "skipped", "cancelled") else ""
        elapsed = run.clock() - (run.started_at or run.clock())
        with contextlib.suppress(OSError):  # a closed pipe must not stop the run
            console.print(f"{elapsed:7.2f}s  {event:<9} {name}{extra}", highlight=False, markup=False)
    return on_event
