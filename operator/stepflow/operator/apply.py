"""Apply: the engine's decision carried out as Jobs, through the engine's one apply loop.

Order matters for a crash at any point:

* a Job is created *before* its step is recorded as Running; a restarted operator finds it by
  its deterministic name and adopts it (409 → read it);
* a step is recorded as Cancelled *before* its Job is deleted: the Job of a step that is over,
  or of an older run, is deleted after the status write (:func:`delete_stale_jobs`), by
  whichever reconcile comes next if this one is interrupted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepflow.engine import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    StepState,
    Verdict,
    cancelled,
)
from stepflow.operator.api import Api
from stepflow.operator.jobs import RUN_LABEL, STEP_LABEL, build_job, job_outcome, observe_job, owned_by
from stepflow.operator.observe import Observer
from stepflow.operator.runs import Run
from stepflow.operator.runtime.api import Conflict, Forbidden, Invalid, NotFound
from stepflow.operator.store import Key, Store
from stepflow.outputs import output_env
from stepflow.plan import Plan


class JobStarter:
    """The operator as the executor of :func:`stepflow.engine.apply_decision` for one reconcile."""

    def __init__(self, api: Api, store: Store, observer: Observer, key: Key, plan: Plan,
                 body: Mapping[str, Any], run: Run, states: Mapping[str, StepState]):
        self.api, self.store, self.observer = api, store, observer
        self.key, self.plan, self.body, self.run, self.states = key, plan, body, run, states
        self.uid: str = body["metadata"].get("uid", "")
        self.adopted: set[str] = set()  # Jobs that existed already: created before a restart
        self.expansions: dict[str, tuple[Mapping[str, str], ...]] = {}  # M4, recorded before any copy starts

    def start(self, name: str, now: float) -> StepState:
        """Create the step's Job; an existing one of this Workflow is adopted."""
        step = self.plan.step_by_name[name]
        manifest = build_job(self.plan, step, namespace=self.key[0], owner_uid=self.uid,
                             generation=self.run.generation, outputs=output_env(self.plan, step, self.states))
        job_id = manifest["metadata"]["name"]
        try:
            job = self.api.create_job(self.key[0], manifest)
        except Conflict:
            return self._adopt(name, job_id, now)  # created before a restart, or not ours
        except Invalid as exc:
            return StepState(phase=FAILED, reason="InvalidJob", message=str(exc), started_at=now,
                             finished_at=now, job_name=job_id)
        except Forbidden as exc:  # RBAC, a quota, or a namespace being deleted: retrying won't help
            return StepState(phase=FAILED, reason="JobForbidden", message=str(exc), started_at=now,
                             finished_at=now, job_name=job_id)
        self.store.put_job(self.key, job)
        state = StepState(phase=RUNNING, started_at=now, attempts=1, job_name=job_id)
        return observe_job(state, job, now) if job_outcome(job)[0] != RUNNING else state

    def stop(self, name: str, verdict: Verdict, now: float) -> StepState:
        """Recorded now; its Job is deleted once the status says so (delete_stale_jobs)."""
        return cancelled(self.states[name], verdict, now)

    def recorded(self, name: str, state: StepState) -> None:
        """Skips become Events after the status write that records them, not here."""

    def expand(self, expansions: Mapping[str, tuple[Mapping[str, str], ...]], now: float) -> None:
        """M4: the copies are written to status by this reconcile; their Jobs come after."""
        self.expansions.update(expansions)

    def _adopt(self, name: str, job_id: str, now: float) -> StepState:
        """The Job exists: ours if our creator died before recording it, else an old one's."""
        try:
            job = self.api.get_job(self.key[0], job_id)
        except NotFound:  # gone between the 409 and the read (deleted, or a proxy's 409): retry
            return StepState(phase=PENDING, reason="JobConflict", message=(
                f"creating Job {job_id} answered 409 Conflict, yet it does not exist; retrying"))
        if not owned_by(job, self.uid):
            return StepState(phase=PENDING, reason="JobNameTaken", message=(
                f"Job {job_id} of an earlier Workflow with this name still exists; "
                "the step starts once it is deleted"))
        self.store.put_job(self.key, job)
        self.adopted.add(name)
        state = observe_job(StepState(phase=RUNNING, attempts=1, job_name=job_id), job, now)
        if state.phase == FAILED:
            return self.observer.with_failure_details(self.key, job, state)
        if state.phase == SUCCEEDED and self.plan.step_by_name[name].outputs:
            return self.observer.with_step_outputs(self.key, job, self.plan, name, state)
        return state


def delete_stale_jobs(api: Api, store: Store, observer: Observer, key: Key, body: Mapping[str, Any],
                      states: Mapping[str, StepState], run: Run) -> None:
    """Active Jobs of an older run, or of a step already over, are stopped (level-triggered).
    A Job whose pod succeeded is over, though the Job controller may not say so yet: it stays,
    the record of its run (jobs.succeeded_by_pod)."""
    for name, job in observer.own_jobs(key, body["metadata"].get("uid", "")).items():
        labels = job["metadata"].get("labels") or {}
        if (job_outcome(job)[0] != RUNNING or job["metadata"].get("deletionTimestamp")
                or store.pod_succeeded(key, job)):
            continue
        state = states.get(labels.get(STEP_LABEL, ""))
        stale_run = labels.get(RUN_LABEL) != str(run.generation)
        if stale_run or state is None or state.phase in (CANCELLED, SKIPPED):
            api.delete_job(key[0], name)
            store.drop_job(key, name, job["metadata"].get("uid", ""))
