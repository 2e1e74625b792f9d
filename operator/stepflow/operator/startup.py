"""The composition root: stepflow's operator, built from the runtime, its cache and the reconcile.

``stepflow operator`` passes its flags as environment variables (main.py); this module reads
them, waits for the Workflow CRD, and wires the controller runtime
(:mod:`stepflow.operator.runtime`) to what is stepflow's: the cache (:mod:`.store`), the
reconcile with its StepPools, the Events about Workflows, re-list detection (:mod:`.relist`),
the pod sweeper and the pool-status writer.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import time
from dataclasses import dataclass, field

import prometheus_client

from stepflow.engine import SlotQueue
from stepflow.operator import metrics, relist
from stepflow.operator.api import Api
from stepflow.operator.pod_sweeper import sweep_waiting_jobs
from stepflow.operator.pool_status import write_pool_statuses
from stepflow.operator.reconcile import Reconciler
from stepflow.operator.runtime.api import TRANSIENT_ERRORS, Forbidden, NotFound, load_config
from stepflow.operator.runtime.controller import Controller, exit_now
from stepflow.operator.runtime.events import EventSource
from stepflow.operator.runtime.leader import LEASE_NAME, LeaseSettings, default_identity
from stepflow.operator.runtime.listwatch import ListWatch
from stepflow.operator.store import Key, Store
from stepflow.spec import API_GROUP, API_VERSION, KIND

log = logging.getLogger(__name__)
WORKERS = int(os.environ.get("STEPFLOW_WORKERS", "8"))
# Events are about Workflows; gathered ones name their steps.
WORKFLOW_EVENTS = EventSource(component="stepflow-operator", controller=f"{API_GROUP}/operator",
                              api_version=f"{API_GROUP}/{API_VERSION}", kind=KIND,
                              item="step", items="steps")


@dataclass
class Operator:
    """Everything one operator instance owns; kept in kopf's memo, so tests can run several."""

    controller: Controller[Api]
    store: Store
    reconciler: Reconciler
    child_watches: list[ListWatch] = field(default_factory=list)  # Jobs and pods (child_watches.py)

    def take_over(self) -> list[Key]:
        """On becoming the leader: count what already runs into the operator-wide cap and the
        pools, then reconcile everything the warm cache holds (Jobs the old leader created are
        adopted by name)."""
        self.reconciler.prime_slots()
        return self.store.workflow_keys()


def max_running_jobs() -> int | None:
    value = os.environ.get("STEPFLOW_MAX_RUNNING_JOBS", "").strip()
    return int(value) if value else None


def lease_settings() -> LeaseSettings | None:
    """From the environment ``stepflow operator --leader-elect ...`` sets (main.py)."""
    if os.environ.get("STEPFLOW_LEADER_ELECT") != "1":
        return None
    settings = LeaseSettings(
        namespace=os.environ.get("STEPFLOW_LEASE_NAMESPACE") or os.environ.get("POD_NAMESPACE") or "default",
        identity=default_identity(),
        name=os.environ.get("STEPFLOW_LEASE_NAME") or LEASE_NAME,
        lease_duration=float(os.environ.get("STEPFLOW_LEASE_DURATION", "15")),
        renew_deadline=float(os.environ.get("STEPFLOW_RENEW_DEADLINE", "10")),
        retry_period=float(os.environ.get("STEPFLOW_RETRY_PERIOD", "2")))
    log.info("leader election on lease %s/%s as %s", settings.namespace, settings.name, settings.identity)
    return settings


async def start_operator() -> Operator:
    """Build and start one operator; it serves once kopf's watches feed it (handlers)."""
    controller = Controller.connect(load_config(), client_class=Api, lease=lease_settings(),
                                    user_agent="stepflow-operator", workers=WORKERS,
                                    events=WORKFLOW_EVENTS, name="stepflow")
    await wait_for_crd(controller.api, float(os.environ.get("STEPFLOW_CRD_WAIT", "300")))
    store = Store()
    limit = max_running_jobs()
    reconciler = Reconciler(controller.api, store, controller.events, SlotQueue(limit), wake=controller.wake)
    operator = Operator(controller, store, reconciler)
    await controller.start(reconciler, take_over=operator.take_over,
                           listing_over=functools.partial(relist.listing_over, operator))
    controller.spawn(sweep_waiting_jobs(store, controller.wake), "sweeper")
    controller.spawn(write_pool_statuses(reconciler.pools, controller.api, controller.may_write), "pools")
    metrics.RUNNING_LIMIT.set(-1 if limit is None else limit)
    metrics.watch_phases(store.workflow_phases)
    port = int(os.environ.get("STEPFLOW_METRICS_PORT", "9090") or 0)
    if port:
        prometheus_client.start_http_server(port)
    # What is loaded by now (kopf, the client's ~70,000 model objects) lives as long as the
    # process; frozen, it is no longer rescanned by every full garbage collection. Under load
    # those collections took 90-150 ms and held up every reconcile at once.
    gc.collect()
    gc.freeze()
    log.info("stepflow operator started: %d workers, max running jobs %s, metrics %s",
             WORKERS, "unlimited" if limit is None else limit, f":{port}" if port else "off")
    return operator


async def wait_for_crd(api: Api, limit: float, interval: float = 1.0) -> None:
    """Wait, not yet live nor ready, until the API serves Workflows.

    kopf resolves the resources it watches once, after the startup handlers, and never again
    (scanning is off: the least-privilege RBAC cannot watch CRDs). `kubectl apply -k deploy/`
    creates the CRD and the Deployment at once, so the operator can start first; it would then
    serve nothing while its liveness probe stayed green. kopf serves the probe only once this
    handler returns. After ``limit`` seconds without the CRD the operator exits, for Kubernetes
    to restart it and show why.
    """
    path = f"/apis/{API_GROUP}/{API_VERSION}"
    deadline = time.monotonic() + limit
    announced = False
    while True:
        try:
            found = await asyncio.to_thread(api.request, "GET", path)
            if any(r.get("name") == "workflows" for r in found.get("resources") or ()):
                if announced:
                    log.info("the Workflow CRD is served now; starting")
                return
        except NotFound:
            pass
        except (*TRANSIENT_ERRORS, Forbidden) as error:  # an API still starting, or RBAC: say so
            log.warning("could not read the API's discovery of %s: %s", path,
                        " ".join(str(error).split())[:300])
        if time.monotonic() >= deadline:
            # Nothing has started yet. kopf would log a failed startup handler with a traceback
            # and exit in several steps; a plain exit says it once.
            exit_now("the Workflow CRD (workflows.%s) was not served within %.0fs; install it with "
                     "`kubectl apply -k deploy/` (or deploy/crds/). Exiting.", API_GROUP, limit)
        if not announced:
            log.warning("waiting for the Workflow CRD (workflows.%s) to be served, for up to %.0fs",
                        API_GROUP, limit)
            announced = True
        await asyncio.sleep(interval)
