"""kopf wiring only: settings, startup/cleanup, and the watch-event handlers.

The handlers are ``on.event`` handlers: kopf calls them for every watch
event and writes nothing back, so no progress or last-handled annotations,
no finalizers, and no Events per log line cost API writes. They feed the
cache and queue a reconcile; the work queue guarantees one reconcile per
workflow at a time. The logic lives in :mod:`stepflow.operator.reconcile`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn

import kopf
import prometheus_client

from stepflow.engine import SlotQueue
from stepflow.operator import metrics
from stepflow.operator.api import TRANSIENT_ERRORS, Api, Forbidden, NotFound, load_config
from stepflow.operator.events import EventRecorder
from stepflow.operator.jobs import MANAGED_BY, MANAGED_BY_LABEL, WORKFLOW_LABEL
from stepflow.operator.leader import LEASE_NAME, LeaderElector, LeaseSettings, default_identity
from stepflow.operator.reconcile import Reconciler
from stepflow.operator.store import Key, Store
from stepflow.operator.workqueue import WorkQueue
from stepflow.spec import API_GROUP, API_VERSION

log = logging.getLogger(__name__)
WORKERS = int(os.environ.get("STEPFLOW_WORKERS", "8"))


@dataclass
class Runtime:
    """Everything one operator instance owns; kept in kopf's memo, so tests can run several."""

    store: Store
    queue: WorkQueue
    reconciler: Reconciler
    events: EventRecorder
    executor: ThreadPoolExecutor
    task: asyncio.Task[None] | None = None
    sweeper: asyncio.Task[None] | None = None
    elector: LeaderElector | None = None
    elector_task: asyncio.Task[None] | None = None
    warm_task: asyncio.Task[None] | None = None
    pool_writer: asyncio.Task[None] | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    listing_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    last_listed: float = field(default_factory=time.monotonic)  # when kopf last listed an object
    warm: asyncio.Event = field(default_factory=asyncio.Event)


def max_running_jobs() -> int | None:
    value = os.environ.get("STEPFLOW_MAX_RUNNING_JOBS", "").strip()
    return int(value) if value else None


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """A diff-base that is never built: stepflow has no change-detecting handlers.

    kopf builds one (a deep copy of the object) on every watch event for its
    on.create/on.update handlers; with on.event handlers only, nothing reads it.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


# Pods are watched once they have ended: their exit code and termination message (the step's
# outputs) are what a Job does not tell. A pending or running pod would cost three watch events
# per step, each a pass through kopf; a Job that waits for its pod is looked into on the sweep.
POD_PHASES_WATCHED = "status.phase!=Pending,status.phase!=Running"


def tune(settings: kopf.OperatorSettings) -> None:
    """kopf's defaults cost API writes and reaction time that stepflow's targets cannot afford."""
    # We post our own step and workflow Events; kopf's would add one write per log line.
    settings.posting.enabled = False
    # Only our own Jobs and their pods, filtered by the API server rather than on our side.
    # (kopf reads "batch/jobs" as a group and a version: the keys must be spelled out.)
    for resource in (("batch", "v1", "jobs"), ("v1", "pods")):
        settings.watching.label_selectors[resource] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    settings.watching.field_selectors[("v1", "pods")] = POD_PHASES_WATCHED
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
    # Diagnostic switch, for benchmarks/operator_latency.py's baseline: kopf's stock settings.
    if os.environ.get("STEPFLOW_KOPF_STOCK_SETTINGS") != "1":
        tune(settings)

    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="stepflow-reconcile")
    api_client = load_config()
    elector = leader_elector(Api(api_client))
    if elector is not None:  # the audit log then tells the replicas' requests apart
        api_client.user_agent = f"stepflow-operator ({elector.settings.identity})"
    api = Api(api_client, may_write=elector.may_write if elector else None)
    await wait_for_crd(api, float(os.environ.get("STEPFLOW_CRD_WAIT", "300")))
    store = Store()
    events = EventRecorder(api.post_event)
    limit = max_running_jobs()
    holder: dict[str, WorkQueue] = {}
    reconciler = Reconciler(api, store, events, SlotQueue(limit), wake=lambda key: holder["q"].add(key))
    queue = WorkQueue(reconciler, workers=WORKERS, executor=executor, transient=TRANSIENT_ERRORS,
                      paused=elector is not None)
    holder["q"] = queue
    runtime = Runtime(store, queue, reconciler, events, executor, elector=elector)
    runtime.task = asyncio.create_task(queue.run(), name="stepflow-workqueue")
    if elector is not None:
        metrics.LEADER.set(0)
        runtime.elector_task = asyncio.create_task(
            elector.run(lambda: start_leading(runtime), lambda: stop_leading(runtime), runtime.warm),
            name="stepflow-lease")
        runtime.elector_task.add_done_callback(election_ended)
        runtime.warm_task = asyncio.create_task(warm_up(runtime), name="stepflow-warm-up")
        threading.Thread(target=elector.watch, args=(asyncio.get_running_loop(), runtime.stopping),
                         name="stepflow-lease-watch", daemon=True).start()
    else:
        metrics.LEADER.set(1)
    runtime.sweeper = asyncio.create_task(sweep_waiting_jobs(store, queue), name="stepflow-sweeper")
    runtime.pool_writer = asyncio.create_task(write_pool_statuses(runtime, api), name="stepflow-pools")
    await asyncio.sleep(0)  # let the queue bind to this loop before the first event arrives
    memo.stepflow = runtime
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


def exit_now(message: str, *args: Any) -> NoReturn:
    """Log why, flush the log, and end the process at once, with status 1: for states from
    which kopf's orderly stop could hang on an API that is gone, or would log a traceback."""
    log.error(message, *args)
    logging.shutdown()
    os._exit(1)


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


def leader_elector(api: Api) -> LeaderElector | None:
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
    return LeaderElector(api, settings)


def election_ended(task: asyncio.Task[None]) -> None:
    """The election task never ends while the operator runs: if it failed, nobody renews the
    Lease and this replica could never lead again, so it exits (Kubernetes restarts it)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        exit_now("leader election failed: %s; exiting", " ".join(str(error).split())[:300])


async def warm_up(runtime: Runtime) -> None:
    """A replica contends for the Lease once kopf's first listings are in its cache: quiet for
    LISTING_QUIET seconds. A leader with a cold cache would not know what already runs."""
    while True:
        await asyncio.sleep(1.0)
        if time.monotonic() - runtime.last_listed >= LISTING_QUIET:
            runtime.warm.set()
            return


def start_leading(runtime: Runtime) -> None:
    """Leading: count what already runs into the operator-wide cap, then reconcile everything
    the warm cache holds (level-triggered: Jobs the old leader created are adopted by name)."""
    assert runtime.elector is not None
    settings = runtime.elector.settings
    log.info("became the leader (lease %s/%s, %s)", settings.namespace, settings.name, settings.identity)
    metrics.LEADER.set(1)
    runtime.reconciler.prime_slots()
    for key in runtime.store.workflow_keys():
        runtime.queue.add(key)
    runtime.queue.resume()


def stop_leading(runtime: Runtime) -> None:
    """L3: the lease could not be renewed in time. Writes are fenced already; exit, so that a
    restarted process comes back as a standby with a fresh cache."""
    assert runtime.elector is not None
    metrics.LEADER.set(0)
    exit_now("lost the lease %s/%s: not renewed within %.0fs; stopped writing, exiting",
             runtime.elector.settings.namespace, runtime.elector.settings.name,
             runtime.elector.settings.renew_deadline)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop reconciling, and with an election: fence, let what is in flight end, then hand the
    Lease over. A write refused by the fence is dropped, never sent after the hand-over."""
    runtime: Runtime = memo.stepflow
    runtime.stopping.set()
    if runtime.elector is not None:
        runtime.elector.fence_for_release()
    for task in (runtime.task, runtime.sweeper, runtime.elector_task, runtime.warm_task, runtime.pool_writer):
        if task is not None:
            task.cancel()
    for timer in runtime.listing_timers.values():
        timer.cancel()
    drained = asyncio.to_thread(runtime.executor.shutdown, wait=True, cancel_futures=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drained, timeout=5)
    await asyncio.to_thread(runtime.events.close)
    if runtime.elector is not None:
        await asyncio.to_thread(runtime.elector.release)


def _key(obj: dict[str, Any], name: str | None = None) -> Key:
    meta = obj["metadata"]
    return meta["namespace"], name or meta["name"]


LISTING_QUIET = 5.0  # seconds without a listed object after which a (re-)listing is over


def note_listed(runtime: Runtime, kind: str, key: Key, name: str = "") -> None:
    """A listed object (kopf's event type None); when the listing is over, cached objects it
    did not show are confirmed with a read (Reconciler.confirm_gone)."""
    runtime.store.listed(kind, key, name)
    runtime.last_listed = time.monotonic()
    timer = runtime.listing_timers.get(kind)
    if timer is not None:
        timer.cancel()
    loop = asyncio.get_running_loop()
    runtime.listing_timers[kind] = loop.call_later(LISTING_QUIET, end_listing, runtime, kind)


def end_listing(runtime: Runtime, kind: str) -> None:
    runtime.listing_timers.pop(kind, None)
    suspects = runtime.store.end_listing(kind)
    if suspects:
        log.info("a re-list of %s did not show %d cached object(s); confirming they are gone",
                 kind, len(suspects))
        runtime.executor.submit(confirm_gone, runtime, kind, suspects)


def confirm_gone(runtime: Runtime, kind: str, suspects: set[tuple[Key, str]]) -> None:
    for key, name in suspects:
        try:
            if runtime.reconciler.confirm_gone(kind, key, name):
                runtime.queue.add(key)
        except Exception as error:  # one line, not a Future lost unread; a later re-list retries
            log.warning("could not confirm that %s %s/%s is gone: %s", kind, key[0], name or key[1], error)


@kopf.on.event(API_GROUP, API_VERSION, "workflows")
async def workflow_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.stepflow
    obj = event["object"]
    key = _key(obj)
    if event["type"] is None:
        note_listed(runtime, "workflows", key)
    if event["type"] == "DELETED":
        runtime.store.drop_workflow(key, obj["metadata"].get("uid", ""))
        runtime.queue.add(key)  # the reconcile sees it gone and frees its slots
        return
    if runtime.store.put_workflow(obj):  # not the echo of our own status write
        runtime.queue.add(key)


@kopf.on.event("batch", "v1", "jobs", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def job_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.stepflow
    obj = event["object"]
    workflow = (obj["metadata"].get("labels") or {}).get(WORKFLOW_LABEL)
    if not workflow:
        return
    key = _key(obj, workflow)
    if event["type"] is None:
        note_listed(runtime, "jobs", key, obj["metadata"]["name"])
    if event["type"] == "DELETED":
        runtime.store.drop_job(key, obj["metadata"]["name"], obj["metadata"].get("uid", ""))
    elif not runtime.store.put_job(key, obj):
        return  # only pod bookkeeping changed: nothing the engine looks at
    runtime.queue.add(key)


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def pod_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    """Step pods say what their Jobs do not: an exit code (kept after a deadline deletes the
    pod) and the termination message. Tuned, the watch shows only pods that have ended."""
    runtime: Runtime = memo.stepflow
    obj = event["object"]
    workflow = (obj["metadata"].get("labels") or {}).get(WORKFLOW_LABEL)
    if workflow and runtime.store.put_pod(_key(obj, workflow), obj, deleted=event["type"] == "DELETED"):
        runtime.queue.add(_key(obj, workflow))


@kopf.on.event(API_GROUP, API_VERSION, "steppools")
async def pool_event(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
    """R2: a pool's limit; the workflows that name it are reconciled when it appears or changes."""
    runtime: Runtime = memo.stepflow
    obj = event["object"]
    limit = (obj.get("spec") or {}).get("limit")
    if event["type"] == "DELETED" or not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        limit = None  # the CRD refuses a bad limit; a pool without one grants nothing
    for key in runtime.reconciler.pools.set_limit(_key(obj), limit):
        runtime.queue.add(key)


POOL_STATUS_INTERVAL = 1.0


async def write_pool_statuses(runtime: Runtime, api: Api) -> None:
    """Each StepPool's status, when it changed, at most once a second: the leader's books are
    the truth, so a standby writes none."""
    pools = runtime.reconciler.pools
    while True:
        await asyncio.sleep(POOL_STATUS_INTERVAL)
        if runtime.elector is not None and not runtime.elector.may_write():
            continue
        for pool, status in pools.changed_statuses():
            try:
                await asyncio.to_thread(api.patch_pool_status, pool[0], pool[1], status)
            except NotFound:
                pools.written(pool, status)  # deleted meanwhile; its DELETED event follows
            except (*TRANSIENT_ERRORS, Forbidden) as error:
                pools.written(pool, None)
                log.warning("could not write the status of StepPool %s/%s: %s", pool[0], pool[1],
                            " ".join(str(error).split())[:300])
            else:
                pools.written(pool, status)


SWEEP_INTERVAL = 5.0


async def sweep_waiting_jobs(store: Store, queue: WorkQueue) -> None:
    """A Job whose pod cannot be created (no such ServiceAccount, PodSecurity, a quota) or
    cannot be scheduled changes nothing on the Job, and the pod watch shows no pod until it
    ends. Such workflows are reconciled every few seconds, and the reconcile reads the Job's
    Events or pods (backing off per Job). Pod reports of Jobs gone are pruned on the way."""
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        store.prune_pods()
        for key in store.waiting_jobs(store.clock()):
            queue.add(key)
