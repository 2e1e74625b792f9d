"""``stepflow operator [options] [kopf run options]``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

OUR_OPTIONS = """stepflow options (all other options go to `kopf run`, see `kopf run --help`):
  --max-running-jobs N   cap on running steps across all workflows (env STEPFLOW_MAX_RUNNING_JOBS;
                         default unlimited), shared first come, first served
  --metrics-port N       Prometheus /metrics port (env STEPFLOW_METRICS_PORT; default 9090; 0 = off)
  --workers N            concurrent reconciles (env STEPFLOW_WORKERS; default 8)
  --leader-elect         run as one of several replicas: only the holder of a coordination.k8s.io
                         Lease reconciles; the others keep warm caches and take over
  --leader-elect-lease-duration S   default 15
  --leader-elect-renew-deadline S   default 10 (a leader that cannot renew within it stops)
  --leader-elect-retry-period S     default 2
  --leader-elect-namespace NS       the Lease's namespace (default: env POD_NAMESPACE, else default)
  --leader-elect-lease-name NAME    default stepflow-operator
Without -n/--namespace the operator watches all namespaces; it always runs --standalone."""


def run_operator(argv: Sequence[str]) -> int:
    from stepflow.cli.options import seconds, whole_number

    parser = argparse.ArgumentParser(prog="stepflow operator", add_help=False)
    parser.add_argument("--max-running-jobs", type=whole_number(1), metavar="N")
    parser.add_argument("--metrics-port", type=whole_number(0), metavar="N")
    parser.add_argument("--workers", type=whole_number(1), metavar="N")
    parser.add_argument("--leader-elect", action="store_true")
    for option in ("lease-duration", "renew-deadline", "retry-period"):
        parser.add_argument(f"--leader-elect-{option}", type=seconds, metavar="S")
    parser.add_argument("--leader-elect-namespace", metavar="NS")
    parser.add_argument("--leader-elect-lease-name", metavar="NAME")
    ours, rest = parser.parse_known_args(list(argv))
    _lease_options(parser, ours)
    if "-h" in rest or "--help" in rest:
        print(OUR_OPTIONS + "\n")
    for option, variable in (("max_running_jobs", "STEPFLOW_MAX_RUNNING_JOBS"),
                             ("metrics_port", "STEPFLOW_METRICS_PORT"), ("workers", "STEPFLOW_WORKERS")):
        value = getattr(ours, option)  # its type checked its bounds
        if value is not None:
            os.environ[variable] = str(value)
    scoped = any(a in ("-A", "--all-namespaces") or a.startswith(("-n", "--namespace")) for a in rest)
    scope = [] if scoped else ["--all-namespaces"]
    if scoped:  # a Role cannot grant the watch of a cluster-scoped kind (handlers.py)
        os.environ.setdefault("STEPFLOW_CLUSTER_STEP_TYPES", "0")
    served = namespaces_of(rest)
    patterns = [name for name in served if any(c in name for c in "*?[!,")]
    if patterns:
        parser.error(f"-n/--namespace takes namespace names, not patterns ({', '.join(patterns)}): "
                     "the operator watches its Jobs and pods namespace by namespace; give -n once for each")
    os.environ["STEPFLOW_NAMESPACES"] = ",".join(served)  # child_watches.py; empty: every namespace
    args = ["run", "-m", "stepflow.operator.handlers", "--standalone", *scope, *rest]
    # kopf names the operator after its user unless POD_ID names it, and looks that user up in
    # /etc/passwd, where a container's UID has no entry (the image's 65532, OpenShift's arbitrary
    # UIDs): the lookup's KeyError stopped the image's operator at start. Its pod name needs none.
    if not os.environ.get("POD_ID"):
        from stepflow.operator.runtime.leader import default_identity

        os.environ["POD_ID"] = default_identity()
    from click.exceptions import ClickException
    from kopf.cli import main

    try:
        main(args=args, prog_name="stepflow operator", standalone_mode=False)
    except ClickException as exc:  # an unknown option, say: the problem, exit 2 (a usage error)
        print(f"stepflow operator: error: {exc.format_message()}\n(see stepflow operator --help)",
              file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def namespaces_of(kopf_args: Sequence[str]) -> list[str]:
    """The values of kopf's -n/--namespace options, however spelled."""
    names, args = [], list(kopf_args)
    for index, arg in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else ""
        if arg in ("-n", "--namespace"):
            names.append(following)
        elif arg.startswith("--namespace="):
            names.append(arg.split("=", 1)[1])
        elif arg.startswith("-n") and not arg.startswith("--"):
            names.append(arg[2:].lstrip("="))
    return [name for name in names if name]


def _lease_options(parser: argparse.ArgumentParser, ours: argparse.Namespace) -> None:
    """Checked here, with client-go's rules, so that a bad combination is a usage error."""
    from stepflow.operator.runtime.leader import LeaseSettings

    if not ours.leader_elect:
        return
    settings = LeaseSettings(
        namespace="", identity="",
        lease_duration=ours.leader_elect_lease_duration or 15.0,
        renew_deadline=ours.leader_elect_renew_deadline or 10.0,
        retry_period=ours.leader_elect_retry_period or 2.0)
    for problem in settings.problems():
        parser.error(problem)
    os.environ.update(STEPFLOW_LEADER_ELECT="1", STEPFLOW_LEASE_DURATION=str(settings.lease_duration),
                      STEPFLOW_RENEW_DEADLINE=str(settings.renew_deadline),
                      STEPFLOW_RETRY_PERIOD=str(settings.retry_period))
    if ours.leader_elect_namespace:
        os.environ["STEPFLOW_LEASE_NAMESPACE"] = ours.leader_elect_namespace
    if ours.leader_elect_lease_name:
        os.environ["STEPFLOW_LEASE_NAME"] = ours.leader_elect_lease_name
