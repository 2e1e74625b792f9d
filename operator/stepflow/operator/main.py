"""``stepflow operator [options] [kopf run options]``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

OUR_OPTIONS = """stepflow options (all other options go to `kopf run`, see `kopf run --help`):
  --max-running-jobs N   cap on running steps across all workflows (env STEPFLOW_MAX_RUNNING_JOBS;
                         default unlimited), shared first come, first served
  --metrics-port N       Prometheus /metrics port (env STEPFLOW_METRICS_PORT; default 9090; 0 = off)
  --workers N            concurrent reconciles (env STEPFLOW_WORKERS; default 8)
Without -n/--namespace the operator watches all namespaces; it always runs --standalone."""


def run_operator(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="stepflow operator", add_help=False)
    parser.add_argument("--max-running-jobs", type=int)
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--workers", type=int)
    ours, rest = parser.parse_known_args(list(argv))
    if "-h" in rest or "--help" in rest:
        print(OUR_OPTIONS + "\n")
    for option, variable in (("max_running_jobs", "STEPFLOW_MAX_RUNNING_JOBS"),
                             ("metrics_port", "STEPFLOW_METRICS_PORT"), ("workers", "STEPFLOW_WORKERS")):
        value = getattr(ours, option)
        if value is not None:
            if value < 0 or (option != "metrics_port" and value == 0):
                parser.error(f"--{option.replace('_', '-')} must be positive")
            os.environ[variable] = str(value)
    scoped = any(a in ("-A", "--all-namespaces") or a.startswith(("-n", "--namespace")) for a in rest)
    scope = [] if scoped else ["--all-namespaces"]
    args = ["run", "-m", "stepflow.operator", "--standalone", *scope, *rest]
    from kopf.cli import main

    try:
        main(args=args, prog_name="stepflow operator", standalone_mode=False)
    except KeyboardInterrupt:
        return 130
    return 0
