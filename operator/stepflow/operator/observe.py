"""Observe: each step's state from its recorded status, its Job and its pods.

The first stage of a reconcile. Jobs and ended pods come from the watch's cache; the API is read
only where the cache may lag (a Job that seems gone, a pod's exit code or outputs not seen yet)
or where the watch cannot tell (a pod that cannot be created or scheduled), and those reads
back off, so a Job that stays stuck does not turn into a stream of lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from stepflow.engine import FAILED, RUNNING, SUCCEEDED, TERMINAL, StepState
from stepflow.operator.api import Api
from stepflow.operator.jobs import (
    failure_details,
    job_name,
    observe_job,
    of_job,
    owned_by,
    pod_problem,
    pod_report,
    succeeded_by_pod,
    success_message,
)
from stepflow.operator.runs import Run, not_before_prerequisites
from stepflow.operator.runtime.api import NotFound
from stepflow.operator.store import POD_LESS_GRACE, Key, Store, pod_less, waits_for_pod
from stepflow.outputs import with_outputs
from stepflow.plan import Plan
from stepflow.status import parse_time

CREATE_CHECK_INTERVAL = 5.0  # seconds before a waiting Job's Events or pods are read again
MAX_CREATE_CHECK_INTERVAL = 60.0
POD_TROUBLE = ("PodCreateFailed", "Unschedulable")


class Observer:
    """Turns Jobs and pods into observed step states; keeps the back-off of its reads."""

    def __init__(self, api: Api, store: Store):
        self.api = api
        self.store = store
        # (Job uid, what is read) -> (next read, what the last read found, the interval that led to it)
        self._pod_checks: dict[tuple[str, str], tuple[float, tuple[str, str], float]] = {}

    def observe(self, key: Key, body: Mapping[str, Any], plan: Plan, before: Mapping[str, StepState],
                 run: Run, now: float) -> tuple[dict[str, StepState], set[str]]:
        """Each step's state from its recorded status and its Job, and which Jobs were adopted.

        Ends are stamped with the reconcile's ``now``, the same instant the steps it unblocks
        are stamped as started, so a dependent never appears to start before its prerequisite
        ended. A Job whose start was never recorded (its creator died first) is adopted.
        """
        uid = body["metadata"].get("uid", "")
        jobs = self.own_jobs(key, uid)
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
            state = succeeded_by_pod(state, job, self._reports(key, job), now)
            if previous.started_at is None:
                adopted.add(step.name)
            if state.phase == RUNNING:
                state = self._pod_trouble(key, job, state, now)
            elif state.phase == FAILED and previous.phase != FAILED:
                state = self.with_failure_details(key, job, state)
            elif state.phase == SUCCEEDED and step.outputs:
                state = self.with_step_outputs(key, job, plan, step.name, state)
            states[step.name] = state
        return (not_before_prerequisites(plan, states, adopted) if adopted else states), adopted

    def _reports(self, key: Key, job: Mapping[str, Any]) -> list:
        meta = job["metadata"]
        return self.store.pod_reports(key, meta["name"], meta.get("uid", ""))

    def with_failure_details(self, key: Key, job: Mapping[str, Any], state: StepState) -> StepState:
        """The exit code from the pod watch's record, else (the pod's last event has not come
        yet, or the operator restarted) from the pods still there."""
        meta = job["metadata"]
        exit_code, message = failure_details(self.store.pod_reports(key, meta["name"], meta.get("uid", "")))
        if exit_code is None and not message:
            pods = map(pod_report, self.api.job_pods(key[0], meta["name"]))
            exit_code, message = failure_details(of_job(pods, meta.get("uid", "")))
        return replace(state, exit_code=exit_code, termination_message=message)

    def with_step_outputs(self, key: Key, job: Mapping[str, Any], plan: Plan, name: str,
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

    def own_jobs(self, key: Key, uid: str) -> dict[str, dict[str, Any]]:
        """This Workflow object's Jobs in the cache, not those of an earlier one of its name."""
        return {name: job for name, job in self.store.jobs(key).items() if owned_by(job, uid)}

    def _fetch_job(self, key: Key, name: str, uid: str) -> dict[str, Any] | None:
        try:
            job = self.api.get_job(key[0], name)
        except NotFound:
            return None
        self.store.put_job(key, job)
        return job if owned_by(job, uid) else None

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
