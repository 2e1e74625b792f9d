"""The ``stepflow`` command, also installed as ``kubectl-stepflow``.

Each subcommand lives in a module named after what it touches; this file only
builds the argument parser and dispatches, importing heavy modules (kopf, the
Kubernetes client) only for the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from stepflow import __version__
from stepflow.cli import cluster, completion, local, step_types, ui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepflow",
        description="Run Workflow resources: ordered, parallel and DAG steps, locally or as Kubernetes Jobs.",
    )
    parser.add_argument("--version", action="version", version=f"stepflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local.register(commands)
    step_types.register(commands)
    # Listed for --help only: main() hands `operator` and its options to kopf before parsing.
    commands.add_parser("operator", help="run the Kubernetes operator (see `stepflow operator --help`)",
                        add_help=False)
    cluster.register(commands)
    ui.register(commands)
    completion.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["operator"]:
        from stepflow.operator.main import run_operator  # kopf parses its own options

        return run_operator(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # `stepflow plan -o json | head`: the reader left early. Exit quietly like other Unix
        # tools, and point stdout at /dev/null so the interpreter's final flush cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
