"""kopf wiring only: settings, startup/cleanup, and the watch-event handlers.

The handlers are ``on.event`` handlers: kopf calls them for every watch
event and writes nothing back, so no progress or last-handled annotations,
no finalizers, and no Events per log line cost API writes. Each hands its
event to :mod:`stepflow.operator.watch_events`, which feeds the cache and
wakes the workflows concerned. kopf watches Workflows, StepPools and step
types; the operator's Jobs and their pods, five events a step, are watched
outside kopf (:mod:`stepflow.operator.child_watches`). The operator is built
by :mod:`stepflow.operator.startup` on the controller runtime
(:mod:`stepflow.operator.runtime`); the reconcile is
:mod:`stepflow.operator.reconcile`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from stepflow.operator import watch_events
from stepflow.operator.child_watches import start_child_watches
from stepflow.operator.jobs import MANAGED_BY, MANAGED_BY_LABEL
from stepflow.operator.startup import Operator, start_operator
from stepflow.spec import API_GROUP, API_VERSION


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """A diff-base that is never built: stepflow has no change-detecting handlers.

    kopf builds one (a deep copy of the object) on every watch event for its
    on.create/on.update handlers; with on.event handlers only, nothing reads it.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


# Diagnostic switch, for the benchmarks' baseline (operator_latency.py, peers.py): kopf's stock
# settings, and kopf watching the Jobs and pods too, as an operator written on kopf alone would.
KOPF_STOCK = os.environ.get("STEPFLOW_KOPF_STOCK_SETTINGS") == "1"


def tune(settings: kopf.OperatorSettings) -> None:
    """kopf's defaults cost API writes and reaction time that stepflow's targets cannot afford."""
    # We post our own step and workflow Events; kopf's would add one write per log line.
    settings.posting.enabled = False
    # Reconnect a dropped or silent watch quickly; resume from the last resourceVersion.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.reconnect_backoff = 0.2
    settings.networking.error_backoffs = (0.1, 0.2, 0.5, 1, 2, 5)
    # No watching of CRDs: the least-privilege RBAC has no right to, and the Workflow CRD is
    # found through discovery at startup (an upgrade that changes it restarts the pod anyway).
    settings.scanning.disabled = True
    # Profiled: a third of kopf's time per watch event went to an INFO line per handler call
    # and to copying the object for change detection that nothing here uses.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    if not KOPF_STOCK:
        tune(settings)
    memo.stepflow = operator = await start_operator()
    if not KOPF_STOCK:
        operator.child_watches = start_child_watches(operator)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop reconciling, and with an election: fence, let what is in flight end, then hand the
    Lease over (the runtime's Controller.stop)."""
    operator: Operator = memo.stepflow
    for watch in operator.child_watches:
        watch.stop()
    await operator.controller.stop()


@kopf.on.event(API_GROUP, API_VERSION, "workflows")
async def workflow_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    watch_events.on_workflow(memo.stepflow, event)


async def job_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    watch_events.on_job(memo.stepflow, event)


async def pod_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    watch_events.on_pod(memo.stepflow, event)


if KOPF_STOCK:
    kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY})(job_event)
    kopf.on.event("", "v1", "pods", labels={MANAGED_BY_LABEL: MANAGED_BY})(pod_event)


@kopf.on.event(API_GROUP, API_VERSION, "steppools")
async def pool_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    watch_events.on_pool(memo.stepflow, event)


@kopf.on.event(API_GROUP, API_VERSION, "steptypes")
async def step_type_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    watch_events.on_step_type(memo.stepflow, event, "StepType")


async def cluster_step_type_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    watch_events.on_step_type(memo.stepflow, event, "ClusterStepType")


# ClusterStepTypes are cluster-scoped: an operator that serves one namespace, with a Role, may
# not watch them unless given a ClusterRole for it (docs/step-types.md); `stepflow operator
# --namespace` turns this watch off unless STEPFLOW_CLUSTER_STEP_TYPES=1.
if os.environ.get("STEPFLOW_CLUSTER_STEP_TYPES", "1") == "1":
    kopf.on.event(API_GROUP, API_VERSION, "clustersteptypes")(cluster_step_type_event)
