"""One reconcile of one Workflow: observe → decide → apply → record.

A thin pipeline. Scheduling is the engine's; each stage is a module of its own:

* :mod:`~stepflow.operator.runs`: which run this reconcile continues or starts;
* :mod:`~stepflow.operator.observe`: each step's state from its status, its Job and its pods;
* the engine's :func:`~stepflow.engine.decide`, with :mod:`~stepflow.operator.queues` answering
  for the slots shared with other workflows;
* :mod:`~stepflow.operator.apply`: the decision carried out as Jobs, through the engine's
  :func:`~stepflow.engine.apply_decision`;
* :mod:`~stepflow.operator.record`: the status write, then Events and metrics.

Each stage survives a crash at any point (see the stages' docstrings); together they are
level-triggered: the same cluster state always leads to the same status and the same Jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.cluster_refusals import cluster_errors
from stepflow.engine import (
    PENDING,
    RUNNING,
    Decision,
    SlotQueue,
    StepState,
    apply_decision,
    decide,
    record_skips,
)
from stepflow.matrix import expand
from stepflow.operator import metrics
from stepflow.operator.api import Api
from stepflow.operator.apply import JobStarter, delete_stale_jobs
from stepflow.operator.observe import CREATE_CHECK_INTERVAL, POD_TROUBLE, Observer
from stepflow.operator.pools import Pools
from stepflow.operator.queues import SharedSlots
from stepflow.operator.record import Recorder
from stepflow.operator.runs import (
    Run,
    current_run,
    not_before_prerequisites,
    previous_states,
    started_with_adopted,
)
from stepflow.operator.runtime.api import NotFound
from stepflow.operator.runtime.events import EventRecorder
from stepflow.operator.store import Key, Store
from stepflow.operator.type_book import StepTypesMissing, TypeBook, versions
from stepflow.plan import Plan, compile_workflow
from stepflow.spec import SpecError
from stepflow.status import build_status, expansions_from_status, invalid_status
from stepflow.step_types import Catalog, TypeLookup, resolve

NAME_TAKEN_RETRY = 2.0  # seconds between checks for an earlier Workflow's Job to be gone


def soonest(*delays: float | None) -> float | None:
    """The earliest of several requeue delays; None means no requeue."""
    return min((d for d in delays if d is not None), default=None)


class Reconciler:
    """Callable by the work queue: ``reconciler(key)`` returns seconds until it wants to run again."""

    def __init__(self, api: Api, store: Store, events: EventRecorder, slots: SlotQueue,
                 wake: Callable[[Key], None], clock: Callable[[], float] = time.time,
                 pools: Pools | None = None):
        self.api = api
        self.store = store
        self.pools = pools or Pools()
        self.shared = SharedSlots(slots, self.pools, wake)
        self.observer = Observer(api, store)
        self.recorder = Recorder(api, store, events)
        self.clock = clock
        self.types = TypeBook()
        self._plans: dict[Key, tuple[tuple[str, int], Plan]] = {}  # a spec is planned once
        self._expansions: dict[Key, tuple[Plan, str, Plan]] = {}  # and each expansion of it (M4)

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
        self.shared.forget(key)
        self.types.forget(key)
        self._plans.pop(key, None)
        self._expansions.pop(key, None)

    def prime_slots(self) -> None:
        self.shared.prime(self.store)

    def confirm_gone(self, kind: str, key: Key, name: str = "") -> bool:
        return self.observer.confirm_gone(kind, key, name)

    def reconcile(self, key: Key) -> float | None:
        body = self.store.workflow(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(key)
            return None
        now = self.clock()
        run = current_run(body, now)
        try:
            plan = self._plan(key, body, run)
        except StepTypesMissing as missing:
            self.recorder.waiting_for_types(key, body, missing.message, now)
            return None
        except SpecError as exc:
            self._record_invalid(key, body, exc, now)
            return None
        old_status = body.get("status") or {}
        if not run.is_new:  # M4: the lists this run read from outputs, as it recorded them
            plan = self._expanded(key, plan, expansions_from_status(old_status))
        before = previous_states(body, run)
        states, adopted = self.observer.observe(key, body, plan, before, run, now)
        plan, decision, requeue = self._decide_and_apply(key, plan, body, run, states, now, adopted)
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
        if plan.step_types:  # T5: what the run resolved when it started, kept for its whole run
            new_status["stepTypes"] = old_status.get("stepTypes") if not run.is_new else {
                name: t.kept() for name, t in sorted(plan.step_types.items())}
        if self.recorder.write_status(key, body, old_status, new_status):
            requeue = 0.0
        self.recorder.announce(body, plan, before, states, decision, run, old_status)
        # Stopping Jobs comes last: if it fails for good, the Events above are already posted.
        delete_stale_jobs(self.api, self.store, self.observer, key, body, states, run)
        self.shared.settled(key, plan, states, decision.finished)
        return soonest(requeue, None if decision.wake_at is None else max(decision.wake_at - now, 0.0))

    def _plan(self, key: Key, body: Mapping[str, Any], run: Run) -> Plan:
        """The plan of this spec generation and these step types, compiled once rather than on
        every watch event. A new run resolves its types from the watches (T2, T4); a run in
        progress uses what it kept when it started (T5)."""
        types = self.types.view(key[0]) if run.is_new else Catalog.kept(body.get("status")) or Catalog()
        identity = (body["metadata"].get("uid", ""), body["metadata"].get("generation") or 0,
                    versions(body, types))
        cached = self._plans.get(key)
        if cached is not None and cached[0] == identity:
            return cached[1]
        if run.is_new:
            self._check_types(key, body, types)
        plan = compile_workflow(body, types)
        errors = cluster_errors(plan)
        if errors:
            raise SpecError(errors)
        self._plans[key] = (identity, plan)
        return plan

    def _expanded(self, key: Key, plan: Plan, recorded: Mapping[str, Any]) -> Plan:
        """The plan with the recorded expansions, built once per expansion rather than per event."""
        steps = plan.step_by_name
        recorded = {n: c for n, c in recorded.items() if n in steps and steps[n].matrix}
        if not recorded:
            return plan
        fingerprint = repr(sorted(recorded.items()))
        cached = self._expansions.get(key)
        if cached is not None and cached[0] is plan and cached[1] == fingerprint:
            return cached[2]
        expanded = expand(plan, recorded)
        self._expansions[key] = (plan, fingerprint, expanded)
        return expanded

    def _check_types(self, key: Key, body: Mapping[str, Any], types: TypeLookup) -> None:
        """T4: a new run whose types are missing waits for them; the API is asked first."""
        missing = resolve(body, types).missing
        if missing:
            self.types.confirm(self.api, key[0], missing)
            missing = resolve(body, types).missing
        if missing:
            self.types.wait(key, missing)
            raise StepTypesMissing(key[0], missing, self.types.problems(key[0], missing))
        self.types.forget(key)

    def _decide_and_apply(self, key: Key, plan: Plan, body: Mapping[str, Any], run: Run,
                          states: dict[str, StepState], now: float,
                          adopted: set[str]) -> tuple[Plan, Decision, float | None]:
        """Decide once, asking the shared queues once, and apply; ``states`` is updated in place.
        Returns the plan and decision to publish, and when to reconcile again (None: on the next
        event). A matrix step expanded now (M4) is published as its copies, which start only once
        that status is written: a restart in between reads the same copies back."""
        spec = plan.spec
        options: dict[str, Any] = {"now": now, "started_at": run.started_at, "suspended": spec.suspend,
                                   "max_concurrency": spec.max_concurrency,
                                   "pool_slots": self.shared.pool_slots(key, plan)}
        queues = self.shared.for_workflow(key, plan, states)
        decision = decide(plan, states, queues=queues, **options)
        starter = JobStarter(self.api, self.store, self.observer, key, plan, body, run, states)
        apply_decision(states, decision, now, starter)
        adopted |= starter.adopted
        requeue: float | None = 0.0 if decision.cancel else None
        for name in decision.start:
            if states[name].phase == PENDING:  # the name is taken by an earlier Workflow's Job
                requeue = soonest(requeue, NAME_TAKEN_RETRY)
            elif states[name].phase != RUNNING:
                requeue = 0.0
        if adopted.intersection(decision.start):
            states.update(not_before_prerequisites(plan, states, adopted))
        started = [n for n in decision.start if states[n].phase == RUNNING]
        self.shared.started(key, plan, started)
        if starter.expansions:
            plan = expand(plan, starter.expansions)
            for copies in (plan.matrices[n][1] for n in starter.expansions):
                states.update(dict.fromkeys(copies, StepState()))  # Pending: they start next time
            requeue = 0.0
        if decision.start or decision.cancel or decision.skip or decision.fail or starter.expansions:
            # The status must show the steps as they now are (running, cancelled, skipped, or
            # failed to start, with what follows) rather than as about to change, or the next
            # reconcile would write it again: the rules run once more on what is now observed,
            # with what is left of this reconcile's grants (the queues are not asked again).
            attempted = set(decision.start)
            decision = decide(plan, states, queues=queues.left_after(started), **options)
            # Skips and failures can make steps ready, or end the main part; steps this reconcile's
            # skips made ready start now, not on some later event (none may come: the Job of a step
            # that ended with its pod wakes nobody).
            if decision.skip or decision.fail or set(decision.start) - attempted:
                requeue = 0.0
            record_skips(states, decision, now)
        return plan, decision, requeue

    def _record_invalid(self, key: Key, body: Mapping[str, Any], error: SpecError, now: float) -> None:
        """InvalidSpec is final for this generation: recorded once, never retried."""
        old = body.get("status") or {}
        generation = body["metadata"].get("generation")
        if old.get("reason") == "InvalidSpec" and old.get("observedGeneration") == generation:
            return
        new = invalid_status(error.errors, now=now, observed_generation=generation, previous=old)
        self.recorder.write_status(key, body, old, new)
        self.recorder.events.record(body, "Warning", "InvalidSpec", new["message"])
        # Whatever an earlier, valid generation left running has no step in this one: stopped.
        delete_stale_jobs(self.api, self.store, self.observer, key, body, {},
                          Run(generation or 0, "", True, now, None))
        self.forget(key)
