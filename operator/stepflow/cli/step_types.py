"""``stepflow types``: which step types a workflow uses and where each came from (T4), and the
``--types PATH`` option that ``validate``, ``plan`` and ``run`` share."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stepflow.cli.plan_view import collapsed
from stepflow.printable import printable
from stepflow.spec import SpecError
from stepflow.step_types import StepType
from stepflow.workflow_files import load_plans, load_types

EXIT_OK, EXIT_FAILED = 0, 1


def add_types_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--types", action="append", default=[], metavar="PATH",
                        help="StepType and ClusterStepType documents: a file, or a folder of YAML "
                             "files (repeatable); the workflow's own file may hold some too")


def register(commands: argparse._SubParsersAction) -> None:
    types = commands.add_parser(
        "types", help="list the step types a workflow uses and where each came from",
        description="With FILEs: each workflow's step types, where each came from and which steps "
                    "use it. Without: the types that --types gives.")
    types.add_argument("files", nargs="*", metavar="FILE")
    add_types_option(types)
    types.set_defaults(handler=cmd_types)


def cmd_types(args: argparse.Namespace) -> int:
    console = Console()
    if not args.files:
        found, errors = load_types(args.types)
        for error in errors:
            print(printable(f"stepflow types: {error}"), file=sys.stderr)
        console.print(_catalogue(found))
        return EXIT_FAILED if errors else EXIT_OK
    status = EXIT_OK
    for file in args.files:
        try:
            plans = load_plans(file, args.types)
        except SpecError as exc:
            for error in exc.errors:
                print(printable(f"{file}: {error}"), file=sys.stderr)
            status = EXIT_FAILED
            continue
        for plan in plans:
            table = Table(title=f"step types of {plan.spec.name}")
            for column in ("type", "kind", "from", "steps", "params"):
                table.add_column(column, overflow="fold")  # folded, never cut
            for name, used in sorted(plan.step_types.items()):
                steps = [s for s in plan.steps if s.type == name]
                params = sorted({f"{k}={v}" for s in steps for k, v in s.params.items()})
                table.add_row(_cell(name), used.kind, _cell(used.source or "?"),
                              _cell(", ".join(collapsed(plan, [s.name for s in steps], counted=True))),
                              _cell(", ".join(params)))
            labels = sorted({s.type for s in plan.steps if s.type and s.type not in plan.step_types})
            for name in labels:
                table.add_row(_cell(name), "(label)", "no step type: the steps say how they run", "", "")
            console.print(table)
    return status


def _catalogue(types: list[StepType]) -> Table:
    table = Table(title="step types")
    for column in ("name", "kind", "from", "params", "image"):
        table.add_column(column, overflow="fold")
    for t in sorted(types, key=lambda t: (t.name, t.kind)):
        params = ", ".join(p["name"] + ("" if "default" in p else " (required)") for p in t.params)
        image = str(t.spec.get("image") or "")
        table.add_row(_cell(t.name), t.kind, _cell(t.source), _cell(params), _cell(image))
    return table


def _cell(text: str) -> Text:
    """Values are whatever a file says: never markup, and no escape sequence a terminal obeys."""
    return Text(printable(text))
