"""An in-process Kubernetes API emulator for tests and benchmarks, built on kmock 0.8.

    from cluster import Cluster, Outcome
    with Cluster(crds=[workflow_crd()], time_scale=0.1) as k8s:
        k8s.jobs.when(Outcome(duration=1, exit_code=3), step="build")
        ...  # point kopf / kubernetes / kubectl at k8s.kubeconfig

See fixtures.py for the `cluster` pytest fixture and kopfthread.py for running kopf in a thread.
"""

from .celrules import SKIPPED as SKIPPED_CEL_RULES
from .cluster import Cluster, wait_for
from .crds import MINIMAL_WORKFLOW_CRD, WORKFLOW_CRD_FILE, workflow_crd
from .errors import ApiError
from .faults import Fault, Faults
from .jobs import JobController, JobRun, Outcome, by_script, outcomes, parse_script
from .kubeconfig import write_kubeconfig
from .requestlog import Record, RequestLog

__all__ = [
    "MINIMAL_WORKFLOW_CRD",
    "SKIPPED_CEL_RULES",
    "WORKFLOW_CRD_FILE",
    "ApiError",
    "Cluster",
    "Fault",
    "Faults",
    "JobController",
    "JobRun",
    "Outcome",
    "Record",
    "RequestLog",
    "by_script",
    "outcomes",
    "parse_script",
    "wait_for",
    "workflow_crd",
    "write_kubeconfig",
]
