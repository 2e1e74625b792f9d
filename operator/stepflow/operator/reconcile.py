"""One reconcile of one Workflow: observe, let the engine decide, apply, record.

This is a thin adapter. Scheduling is the engine's; this module only turns
Jobs into observed step states and decisions into API calls, in an order
that survives a crash at any point:

* a Job is created *before* its step is recorded as Running; a restarted
  operator finds it by its deterministic name and adopts it (409 → read it);
* a step is recorded as Cancelled *before* its Job is deleted; an active Job
  whose step is already over is deleted by the next reconcile, whatever
  interrupted the last one;
* Events are posted only after the status patch they describe succeeded, so
  a retried reconcile does not post them twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from stepflow.cluster_checks import cluster_errors
from stepflow.engine import (
    CANCELLED,
    CONDITION_FALSE,
    FAILED,
    PENDING,
    POOL_NOT_FOUND,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    Decision,
    SlotQueue,
    StepState,
    apply_skips,
    decide,
)
from stepflow.operator import metrics
from stepflow.operator.api import Api, Conflict, Forbidden, Invalid, NotFound
from stepflow.operator.events import EventRecorder
from stepflow.operator.jobs import (
    RUN_LABEL,
    STEP_LABEL,
    build_job,
    failure_details,
    job_name,
    job_outcome,
    legacy_spec_hash,
    observe_job,
    of_job,
    owned_by,
    pod_problem,
    pod_report,
    spec_hash,
    success_message,
)
from stepflow.operator.pools import Pools
from stepflow.operator.store import POD_LESS_GRACE, Key, Store, pod_less, waits_for_pod
from stepflow.outputs import output_env, with_outputs
from stepflow.plan import Plan, compile_workflow
from stepflow.spec import RERUN_FAILED_ANNOTATION, SpecError
from stepflow.status import build_status, invalid_status, parse_time, states_from_status

log = logging.getLogger(__name__)
FINISHED = (SUCCEEDED, FAILED)
NAME_TAKEN_RETRY = 2.0  # seconds between checks for an earlier Workflow's Job to be gone
CREATE_CHECK_INTERVAL = 5.0  # seconds before a waiting Job's Events or pods are read again
MAX_CREATE_CHECK_INTERVAL = 60.0
POD_TROUBLE = ("PodCreateFailed", "Unschedulable")


def slots_left(plan: Plan, slots: Mapping[str, int | None],
               started: Collection[str]) -> dict[str, int | None]:
    """Pool slots after ``started`` took theirs: the last decision must not offer them again."""
    left = dict(slots)
    for name in started:
        pool = plan.step_by_name[name].pool
        if pool is not None and left.get(pool) is not None:
            left[pool] -= 1
    return left


def soonest(*delays: float | None) -> float | None:
    """The earliest of several requeue delays; None means no requeue."""
    return min((d for d in delays if d is not None), default=None)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning ``old`` into ``new``: only what changed, nulls for removals."""
    patch: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before:
            patch[key] = value
    return patch


@dataclass(frozen=True)
class Run:
    """Which run of the workflow this reconcile continues (or starts)."""

    generation: int
    spec_hash: str
    is_new: bool
    started_at: float
    finished_at: float | None


def carried_over(body: Mapping[str, Any], run: Run) -> dict[str, StepState]:
    """``stepflow rerun --failed``: a new run that keeps the previous run's successes.

    The CLI sets a new ``spec.runToken`` and names that same token in an
    annotation; only a run started by that very token keeps anything.
    """
    annotations = body["metadata"].get("annotations") or {}
    token = (body.get("spec") or {}).get("runToken")
    if not run.is_new or not token or annotations.get(RERUN_FAILED_ANNOTATION) != token:
        return {}
    previous = states_from_status(body.get("status"))
    return {name: replace(state, message="kept from the previous run")
            for name, state in previous.items() if state.phase == SUCCEEDED}


def current_run(body: Mapping[str, Any], now: float) -> Run:
    """A new run starts when the run-defining spec changed; suspend/maxConcurrency never start one."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    fingerprint = spec_hash(spec)
    generation = body["metadata"].get("generation") or 1
    recorded = status.get("specHash")
    same = recorded == fingerprint or (recorded is not None and recorded == legacy_spec_hash(spec))
    if not same or status.get("runGeneration") is None:
        return Run(generation, fingerprint, True, now, None)
    return Run(status["runGeneration"], fingerprint, False,
               parse_time(status.get("startedAt")) or now, parse_time(status.get("finishedAt")))


def not_before_prerequisites(plan: Plan, states: dict[str, StepState],
                             adopted: Collection[str]) -> dict[str, StepState]:
    """Start times of Jobs adopted after a restart, made consistent with the run's order.

    The operator that created such a Job may have died before recording the
    step's millisecond start, and a Job's startTime has whole seconds. The Job
    was created only once its prerequisites had ended, so its start is moved
    up to the latest of their ends; otherwise the status (and the timeline)
    would show a step starting before a step it waits for had finished.
    """
    for name in plan.topological_order:
        state = states.get(name)
        if name not in adopted or state is None or state.started_at is None:
            continue
        ends = [states[p].finished_at for p in plan.prerequisites(name)
                if p in states and states[p].finished_at is not None]
        if ends and max(ends) > state.started_at:
            start = max(ends)
            finished = None if state.finished_at is None else max(state.finished_at, start)
            states[name] = replace(state, started_at=start, finished_at=finished)
    return states


def started_with_adopted(run: Run, states: Mapping[str, StepState], adopted: Collection[str]) -> Run:
    """A new run whose first status write was lost began no later than the Jobs it adopts."""
    starts = [states[n].started_at for n in adopted if states[n].started_at is not None]
    return replace(run, started_at=min(starts)) if starts and min(starts) < run.started_at else run


class Reconciler:
    """Callable by the work queue: ``reconciler(key)`` returns seconds until it wants to run again."""

    def __init__(self, api: Api, store: Store, events: EventRecorder, slots: SlotQueue,
                 wake: Callable[[Key], None], clock: Callable[[], float] = time.time,
                 pools: Pools | None = None):
        self.api = api
        self.store = store
        self.events = events
        self.slots = slots
        self.pools = pools or Pools()
        self.wake = wake
        self.clock = clock
        self._running: dict[Key, int] = {}
        self._slots_lock = threading.Lock()  # SlotQueue is plain bookkeeping; workers share it
        self._plans: dict[Key, tuple[tuple[str, int], Plan]] = {}  # a spec is planned once
        # (Job uid, what is read) -> (next read, what the last read found, the interval that led to it)
        self._pod_checks: dict[tuple[str, str], tuple[float, tuple[str, str], float]] = {}

    def __call__(self, key: Key) -> float | None:
        started = time.perf_counter()
        try:
            return self.reconcile(key)
        except NotFound:
            # The Workflow was deleted while we worked on it (its status patch or a Job create
            # found it gone); its DELETED event follows. Its Jobs go with it (owner references).
            if self.store.workflow(key) is not None:
                raise  # something else is missing: a real failure, retried
            self.forget(key)
            return None
        finally:
            metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)

    def forget(self, key: Key) -> None:
        """The workflow is gone: free its slots and let the next in line start."""
        with self._slots_lock:
            self.slots.forget(key)
            next_in_line = self.slots.next_in_line()
        self._running.pop(key, None)
        self._plans.pop(key, None)
        metrics.RUNNING_STEPS.set(sum(self._running.values()))
        for other in [*next_in_line, *self.pools.forget(key)]:
            self.wake(other)

    def prime_slots(self) -> None:
        """A new leader's operator-wide cap starts from what the old leader left running, so
        the first workflows it reconciles cannot take slots that are in use."""
        with self._slots_lock:
            for key, running in self.store.running_steps().items():
                if running:
                    self.slots.grant(key, [], running)
                    self._running[key] = running
        self.pools.prime(self.store.running_in_pools())

    def confirm_gone(self, kind: str, key: Key, name: str = "") -> bool:
        """Forget a cached Workflow or Job that a re-list did not show, if a read confirms it is
        gone; True if so (then the workflow wants a reconcile)."""
        if kind == "workflows":
            body = self.store.workflow(key)
            if body is None or self.api.workflow_exists(*key):
                return False
            self.store.drop_workflow(key, body["metadata"].get("uid", ""))
            return True
        job = self.store.jobs(key).get(name)
        if job is None:
            return False
        try:
            self.api.get_job(key[0], name)
        except NotFound:
            self.store.drop_job(key, name, job["metadata"].get("uid", ""))
            return True
        return False

    # --- the reconcile ----------------------------------------------------------------------

    def reconcile(self, key: Key) -> float | None:
        body = self.store.workflow(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(key)
            return None
        now = self.clock()
        try:
            plan = self._plan(key, body)
        except SpecError as exc:
            self._record_invalid(key, body, exc, now)
            return None
        run = current_run(body, now)
        old_status = body.get("status") or {}
        before = carried_over(body, run) if run.is_new else states_from_status(old_status)
        states, adopted = self._observe(key, body, plan, before, run, now)
        decision, states, requeue = self._act(key, plan, body, run, states, now, adopted)
        if any(s.phase == RUNNING and s.reason in POD_TROUBLE for s in states.values()):
            # A pod that gets scheduled or created changes nothing the Job watch reports on:
            # look again, so the reason goes once the trouble has.
            requeue = soonest(requeue, CREATE_CHECK_INTERVAL)
        if run.is_new and adopted:
            run = started_with_adopted(run, states, adopted)
        new_status = build_status(
            plan, states, decision, now=now, started_at=run.started_at, finished_at=run.finished_at,
            run_generation=run.generation, observed_generation=body["metadata"].get("generation"),
            previous=old_status)
        new_status["specHash"] = run.spec_hash
        if self._write_status(key, body, old_status, new_status):
            requeue = 0.0
        self._after_write(key, body, plan, before, states, decision, run, old_status)
        return soonest(requeue, None if decision.wake_at is None else max(decision.wake_at - now, 0.0))

    def _plan(self, key: Key, body: Mapping[str, Any]) -> Plan:
        """The plan of this spec generation, compiled once rather than on every watch event."""
        identity = (body["metadata"].get("uid", ""), body["metadata"].get("generation") or 0)
        cached = self._plans.get(key)
        if cached is not None and cached[0] == identity:
            return cached[1]
        plan = compile_workflow(body)
        errors = cluster_errors(plan)
        if errors:
            raise SpecError(errors)
        self._plans[key] = (identity, plan)
        return plan

    def _observe(self, key: Key, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                 run: Run, now: float) -> tuple[dict[str, StepState], set[str]]:
        """Each step's state from its recorded status and its Job, and which Jobs were adopted.

        Ends are stamped with the reconcile's ``now``, the same instant the steps it unblocks
        are stamped as started, so a dependent never appears to start before its prerequisite
        ended. A Job whose start was never recorded (its creator died first) is adopted.
        """
        uid = body["metadata"].get("uid", "")
        jobs = self._own_jobs(key, uid)
        states = {}
        adopted: set[str] = set()
        for step in plan.steps:
            previous = before.get(step.name, StepState())
            name = job_name(plan.spec.name, run.generation, step.name)
            job = jobs.get(name)
            if previous.phase in TERMINAL:
                if previous.phase == FAILED and previous.exit_code is None and job is not None:
                    previous = self._late_exit_code(key, job, previous)
                states[step.name] = previous
                continue
            if job is None and previous.phase == RUNNING:
                job = self._fetch_job(key, name, uid)  # the cache may lag; only a 404 means gone
                if job is None:
                    states[step.name] = replace(
                        previous, phase=FAILED, reason="JobDeleted", finished_at=now,
                        message=f"Job {name} was deleted before the step finished")
                    continue
            if job is None:
                states[step.name] = previous
                continue
            state = observe_job(previous, job, now)
            if previous.started_at is None:
                adopted.add(step.name)
            if state.phase == RUNNING:
                state = self._pod_trouble(key, job, state, now)
            elif state.phase == FAILED and previous.phase != FAILED:
                state = self._with_failure_details(key, job, state)
            elif state.phase == SUCCEEDED and step.outputs:
                state = self._with_outputs(key, job, plan, step.name, state)
            states[step.name] = state
        return (not_before_prerequisites(plan, states, adopted) if adopted else states), adopted

    def _with_failure_details(self, key: Key, job: Mapping[str, Any], state: StepState) -> StepState:
        """The exit code from the pod watch's record, else (the pod's last event has not come
        yet, or the operator restarted) from the pods still there."""
        meta = job["metadata"]
        exit_code, message = failure_details(self.store.pod_reports(key, meta["name"], meta.get("uid", "")))
        if exit_code is None and not message:
            pods = map(pod_report, self.api.job_pods(key[0], meta["name"]))
            exit_code, message = failure_details(of_job(pods, meta.get("uid", "")))
        return replace(state, exit_code=exit_code, termination_message=message)

    def _with_outputs(self, key: Key, job: Mapping[str, Any], plan: Plan, name: str,
                      state: StepState) -> StepState:
        """O2: a succeeded step's outputs, from its pod's termination message: the pod watch's
        record, else the pods themselves (the Job's Complete can arrive before the pod's event)."""
        meta = job["metadata"]
        text = success_message(self.store.pod_reports(key, meta["name"], meta.get("uid", "")))
        if text is None:
            pods = map(pod_report, self.api.job_pods(key[0], meta["name"]))
            text = success_message(of_job(pods, meta.get("uid", "")))
        return with_outputs(plan.step_by_name[name], state, text)

    def _late_exit_code(self, key: Key, job: Mapping[str, Any], state: StepState) -> StepState:
        """The Job's Failed can be seen before its pod's final state: the pod watch and the Job
        watch are two streams. The pod's event then brings the exit code to the failed step."""
        meta = job["metadata"]
        exit_code, message = failure_details(self.store.pod_reports(key, meta["name"], meta.get("uid", "")))
        if exit_code is None:
            return state
        return replace(state, exit_code=exit_code, termination_message=message or state.termination_message)

    def _pod_trouble(self, key: Key, job: Mapping[str, Any], state: StepState, now: float) -> StepState:
        """A running step whose pod cannot run says why: the scheduler's reason, or the Job
        controller's FailedCreate Event. It keeps waiting, within its timeoutSeconds.

        The pod watch shows pods once they have ended, so a Job that has had no ready pod for
        a while (the sweep brings it here) is looked into with a read of its Events or pods."""
        if state.reason:  # FailureTarget: the pod is stopping, which says more
            return state
        meta = job["metadata"]
        reports = self.store.pod_reports(key, meta["name"], meta.get("uid", ""))
        reason, message = pod_problem(reports)
        newest = max(reports, key=lambda r: r.created, default=None)
        created = parse_time(meta.get("creationTimestamp"))
        unseen = newest is None or newest.terminated  # the pod that waits is not in the watch
        waited = created is not None and now - created > POD_LESS_GRACE
        if not reason and unseen and waited and waits_for_pod(job):
            uid = meta.get("uid", "")
            if pod_less(job):
                reason, message = self._read_backing_off(
                    (uid, "events"), now, lambda: self._create_failure(key, job))
            elif (job.get("status") or {}).get("active"):
                reason, message = self._read_backing_off(
                    (uid, "pods"), now, lambda: self._pending_pod_problem(key, job))
        return replace(state, reason=reason, message=message) if reason else state

    def _create_failure(self, key: Key, job: Mapping[str, Any]) -> tuple[str, str]:
        """The newest FailedCreate Event of the Job."""
        uid = job["metadata"].get("uid", "")
        events = [e for e in self.api.job_events(key[0], job["metadata"]["name"], "FailedCreate")
                  if (e.get("involvedObject") or {}).get("uid") in ("", None, uid)]
        if not events:
            return "", ""
        newest = max(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return "PodCreateFailed", (newest.get("message") or "")[:1024]

    def _pending_pod_problem(self, key: Key, job: Mapping[str, Any]) -> tuple[str, str]:
        """Why the Job's pending pod cannot run (Unschedulable), from a list of its pods."""
        pods = map(pod_report, self.api.job_pods(key[0], job["metadata"]["name"]))
        return pod_problem(of_job(pods, job["metadata"].get("uid", "")))

    def _read_backing_off(self, check: tuple[str, str], now: float,
                          read: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        """A read about one Job, done again after 5 s, then 10 s, 20 s, ... (at most a minute):
        a quota that stays full or a pod that stays unschedulable must not turn into a stream
        of lists. Between reads, the last finding stands."""
        checked = self._pod_checks.get(check)
        if checked is not None and now < checked[0]:
            return checked[1]
        found = read()
        interval = min(checked[2] * 2, MAX_CREATE_CHECK_INTERVAL) if checked else CREATE_CHECK_INTERVAL
        if len(self._pod_checks) > 10_000:
            self._pod_checks.clear()  # a bound: it is a cache of reads, nothing more
        self._pod_checks[check] = (now + interval, found, interval)
        return found

    def _own_jobs(self, key: Key, uid: str) -> dict[str, dict[str, Any]]:
        """This Workflow object's Jobs in the cache, not those of an earlier one of its name."""
        return {name: job for name, job in self.store.jobs(key).items() if owned_by(job, uid)}

    def _fetch_job(self, key: Key, name: str, uid: str) -> dict[str, Any] | None:
        try:
            job = self.api.get_job(key[0], name)
        except NotFound:
            return None
        self.store.put_job(key, job)
        return job if owned_by(job, uid) else None

    def _act(self, key: Key, plan: Plan, body: Mapping[str, Any], run: Run, states: dict[str, StepState],
             now: float, adopted: set[str]) -> tuple[Decision, dict[str, StepState], float | None]:
        """Apply the engine's decision; returns the decision to publish, the new states and when
        to reconcile again (None: on the next event). Jobs adopted on create are added to
        ``adopted``."""
        spec = plan.spec
        options: dict[str, Any] = {"now": now, "started_at": run.started_at,
                                   "max_concurrency": spec.max_concurrency, "suspended": spec.suspend}
        if plan.pools:
            options["pool_slots"] = self.pools.existing(key[0], plan)
        decision = decide(plan, states, **options)
        if plan.pools:  # R2: what the pools grant of what the engine would start
            options["pool_slots"], wake = self.pools.grant(key, plan, decision.start, states)
            decision = decide(plan, states, **options)
            for other in wake:
                self.wake(other)
        running = sum(1 for s in states.values() if s.phase == RUNNING)
        capped = self.slots.limit is not None
        if capped:
            with self._slots_lock:
                granted = self.slots.grant(key, decision.start, running)
            if granted < len(decision.start):
                decision = decide(plan, states, global_slots=granted, **options)
        states = apply_skips(states, decision, now)
        requeue: float | None = 0.0 if decision.cancel else None
        for name, verdict in decision.cancel.items():
            states[name] = replace(states[name], phase=CANCELLED, reason=verdict.reason,
                                   message=verdict.message, finished_at=now)
        for name in decision.start:
            states[name], adopted_now = self._start(key, plan, name, body, run, now, states)
            if adopted_now:
                adopted.add(name)
            if states[name].phase == PENDING:  # the name is taken by an earlier Workflow's Job
                requeue = soonest(requeue, NAME_TAKEN_RETRY)
            elif states[name].phase != RUNNING:
                requeue = 0.0
        if adopted.intersection(decision.start):
            states = not_before_prerequisites(plan, states, adopted)
        started = [n for n in decision.start if states[n].phase == RUNNING]
        with self._slots_lock:
            self.slots.started(key, started)
        if plan.pools:
            self.pools.started(key, plan, started)
            options["pool_slots"] = slots_left(plan, options["pool_slots"], started)
        # A step that failed to start (InvalidJob) can make later steps unreachable: record
        # those skips now, or the published status would say Failed with steps still Pending.
        final = decide(plan, states, global_slots=0 if capped else None, **options)
        if final.skip or final.fail:  # they can make steps ready, or end the main part: decide again
            requeue = 0.0
        return final, apply_skips(states, final, now), requeue

    def _start(self, key: Key, plan: Plan, name: str, body: Mapping[str, Any], run: Run,
               now: float, states: Mapping[str, StepState]) -> tuple[StepState, bool]:
        """Create the step's Job; returns its state and whether an existing Job was adopted."""
        step = plan.step_by_name[name]
        uid = body["metadata"].get("uid", "")
        manifest = build_job(plan, step, namespace=key[0], owner_uid=uid, generation=run.generation,
                             outputs=output_env(plan, step, states))
        job_id = manifest["metadata"]["name"]
        try:
            job = self.api.create_job(key[0], manifest)
        except Conflict:
            return self._adopt(key, plan, name, job_id, uid, now)  # created before a restart, or not ours
        except Invalid as exc:
            return StepState(phase=FAILED, reason="InvalidJob", message=str(exc), started_at=now,
                             finished_at=now, job_name=job_id), False
        except Forbidden as exc:  # RBAC, a quota, or a namespace being deleted: retrying won't help
            return StepState(phase=FAILED, reason="JobForbidden", message=str(exc), started_at=now,
                             finished_at=now, job_name=job_id), False
        self.store.put_job(key, job)
        state = StepState(phase=RUNNING, started_at=now, attempts=1, job_name=job_id)
        return (observe_job(state, job, now) if job_outcome(job)[0] != RUNNING else state), False

    def _adopt(self, key: Key, plan: Plan, name: str, job_id: str, uid: str,
               now: float) -> tuple[StepState, bool]:
        """The Job exists: ours if our creator died before recording it, else an old one's."""
        try:
            job = self.api.get_job(key[0], job_id)
        except NotFound:  # gone between the 409 and the read (deleted, or a proxy's 409): retry
            return StepState(phase=PENDING, reason="JobConflict", message=(
                f"creating Job {job_id} answered 409 Conflict, yet it does not exist; retrying")), False
        if not owned_by(job, uid):
            return StepState(phase=PENDING, reason="JobNameTaken", message=(
                f"Job {job_id} of an earlier Workflow with this name still exists; "
                "the step starts once it is deleted")), False
        self.store.put_job(key, job)
        state = observe_job(StepState(phase=RUNNING, attempts=1, job_name=job_id), job, now)
        if state.phase == FAILED:
            state = self._with_failure_details(key, job, state)
        elif state.phase == SUCCEEDED and plan.step_by_name[name].outputs:
            state = self._with_outputs(key, job, plan, name, state)
        return state, True

    def _write_status(self, key: Key, body: Mapping[str, Any], old: Mapping[str, Any],
                      new: Mapping[str, Any]) -> bool:
        """Patch what changed; True if the spec changed meanwhile and needs another reconcile.

        The patch's answer becomes the cached object. If it already carries a newer spec, the
        watch event of that spec change arrives older than the cache and is dropped, so this
        is the only place that can notice it.
        """
        patch = merge_patch(old, new)
        # The duration moves with the clock; writing it alone would make every write trigger
        # a watch event, a reconcile and another write. It rides along with real changes.
        if set(patch) <= {"duration"}:
            return False
        try:
            updated = self.api.patch_status(key[0], key[1], patch)
        except NotFound:  # deleted meanwhile: the status of our own object cannot 404 otherwise
            self.store.drop_workflow(key, body["metadata"].get("uid", ""))
            raise
        self.store.put_workflow(updated)
        return updated["metadata"].get("generation") != body["metadata"].get("generation")

    def _after_write(self, key: Key, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                     states: Mapping[str, StepState], decision: Decision, run: Run,
                     old_status: Mapping[str, Any]) -> None:
        if run.is_new and old_status.get("phase") in (PENDING, RUNNING, "Suspended") and (
                old_status.get("runGeneration") is not None):
            self.events.record(body, "Warning", "RunReplaced", (
                f"the spec changed while run {old_status['runGeneration']} was in progress; "
                f"its running Jobs are stopped and run {run.generation} starts"))
        self._record_transitions(body, plan, before, states, run.started_at)
        if plan.pools:
            self._announce_missing_pools(body, plan, before, decision)
        was_finished = old_status.get("phase") in FINISHED and not run.is_new
        if decision.finished and not was_finished:
            kind = "Normal" if decision.phase == SUCCEEDED else "Warning"
            self.events.record(body, kind, f"Workflow{decision.phase}", decision.message)
        # Stopping Jobs comes last: if it fails for good, the Events above are already posted.
        self._delete_stale_jobs(key, body, states, run)
        running = sum(1 for s in states.values() if s.phase == RUNNING)
        freed = running < self._running.get(key, 0)
        self._running[key] = running
        metrics.RUNNING_STEPS.set(sum(self._running.values()))
        with self._slots_lock:
            if decision.finished:
                self.slots.forget(key)
            wake = self.slots.next_in_line() if self.slots.limit is not None and (
                freed or decision.finished) else []
        if decision.finished and plan.pools:
            wake += self.pools.forget(key)
        for other in wake:
            if other != key:
                self.wake(other)

    def _announce_missing_pools(self, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                                decision: Decision) -> None:
        """R2: a Warning Event per missing StepPool when steps start waiting for it; GitOps may
        create the pool later, and then they start."""
        for pool, names in plan.pool_steps.items():
            new = [n for n in names if before.get(n, StepState()).reason != POOL_NOT_FOUND
                   and getattr(decision.waiting.get(n), "reason", "") == POOL_NOT_FOUND]
            if new:
                steps, many = ", ".join(f'"{n}"' for n in new), len(new) > 1
                self.events.record(body, "Warning", POOL_NOT_FOUND, (
                    f"step{'s' if many else ''} {steps} {'wait' if many else 'waits'} for StepPool "
                    f"\"{pool}\", which does not exist in namespace {body['metadata']['namespace']}; "
                    f"{'they start' if many else 'it starts'} once it does"))

    def _delete_stale_jobs(self, key: Key, body: Mapping[str, Any], states: Mapping[str, StepState],
                           run: Run) -> None:
        """Active Jobs of an older run, or of a step already over, are stopped (level-triggered)."""
        for name, job in self._own_jobs(key, body["metadata"].get("uid", "")).items():
            labels = job["metadata"].get("labels") or {}
            if job_outcome(job)[0] != RUNNING or job["metadata"].get("deletionTimestamp"):
                continue
            state = states.get(labels.get(STEP_LABEL, ""))
            stale_run = labels.get(RUN_LABEL) != str(run.generation)
            if stale_run or state is None or state.phase in (CANCELLED, SKIPPED):
                self.api.delete_job(key[0], name)
                self.store.drop_job(key, name, job["metadata"].get("uid", ""))

    def _record_transitions(self, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                            states: Mapping[str, StepState], run_started: float) -> None:
        for step in plan.steps:
            earlier = before.get(step.name, StepState())
            old = earlier.phase
            state = states[step.name]
            named = f'"{step.name}"' + (f" ({step.type})" if step.type else "")
            label = f"step {named}"
            if state.phase == RUNNING and state.reason in POD_TROUBLE and state.reason != earlier.reason:
                self.events.record(body, "Warning", state.reason, f"{label}: {state.message}")
            if state.phase == old:
                continue
            if old == PENDING and state.phase in (RUNNING, SUCCEEDED, FAILED) and state.started_at:
                # Starts and successes are routine: gathered per workflow, they keep a step
                # within DESIGN.md's budget of three writes (the Job name is in status).
                self.events.record_routine(body, "StepStarted", named, "started")
                self._observe_wait(plan, step.name, states, run_started)
            if state.phase == SUCCEEDED:
                self.events.record_routine(body, "StepSucceeded", named, "succeeded")
            elif state.phase == SKIPPED and state.reason == CONDITION_FALSE:
                # W1: a decision the user wrote, so describe shows it; D3 skips follow from an
                # event already recorded (the failure), so they get none.
                self.events.record(body, "Normal", "StepSkipped", f"{label} skipped: {state.message}")
            elif state.phase in (FAILED, CANCELLED):
                detail = f"exit code {state.exit_code}: " if state.exit_code not in (None, 0) else ""
                text = f"{label} {state.phase.lower()}: {detail}{state.reason} {state.message}"
                self.events.record(body, "Warning", f"Step{state.phase}", text.strip())
            if state.phase in (SUCCEEDED, FAILED, CANCELLED) and state.started_at and state.finished_at:
                metrics.STEP_DURATION.labels(type=step.type or "none", outcome=state.phase).observe(
                    max(state.finished_at - state.started_at, 0.0))

    def _observe_wait(self, plan: Plan, name: str, states: Mapping[str, StepState],
                      run_started: float) -> None:
        """Time between a step's prerequisites being met and its start: the cost of the caps.

        A step with no prerequisites (first group, ``dependsOn: []``) was ready when the run began.
        """
        state = states[name]
        ends = [states[p].finished_at for p in plan.prerequisites(name)]
        ready = max((e for e in ends if e is not None), default=run_started)
        if ready is not None and state.started_at is not None:
            metrics.STEP_WAIT.observe(max(state.started_at - ready, 0.0))

    def _record_invalid(self, key: Key, body: Mapping[str, Any], error: SpecError, now: float) -> None:
        """InvalidSpec is final for this generation: recorded once, never retried."""
        old = body.get("status") or {}
        generation = body["metadata"].get("generation")
        if old.get("reason") == "InvalidSpec" and old.get("observedGeneration") == generation:
            return
        new = invalid_status(error.errors, now=now, observed_generation=generation, previous=old)
        self._write_status(key, body, old, new)
        self.events.record(body, "Warning", "InvalidSpec", new["message"])
        # Whatever an earlier, valid generation left running has no step in this one: stopped.
        self._delete_stale_jobs(key, body, {}, Run(generation or 0, "", True, now, None))
        self.forget(key)
