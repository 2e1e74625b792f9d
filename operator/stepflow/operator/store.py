"""The operator's view of the cluster, fed by kopf's watch events (an informer cache).

Reconciles read from here instead of listing the API each time. What is cached is
stepflow's: Workflows, their Jobs (trimmed to what a reconcile reads) and what their pods
say, all by workflow. The rules any such cache keeps are the runtime's
(:mod:`stepflow.operator.runtime.cache`): it never goes backwards (a watch event older than
a write's response, which the operator stores at once, is ignored), a deletion cannot drop a
newer object of the name, and each (re-)listing is bookkept.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.operator.jobs import PodReport, a_pod_succeeded, of_job, pod_report
from stepflow.operator.runtime.cache import Relists, newer, replaced
from stepflow.status import parse_time

Key = tuple[str, str]  # namespace, workflow name
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on its pods by the Job controller
POD_LESS_GRACE = 2.0  # seconds a Job may have no pod before its Events are read


def _job_signature(job: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a Job the reconcile reads: its finishing conditions and attempt counters."""
    status = job.get("status") or {}
    conditions = tuple(sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or ()))
    deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
    suspended = bool((job.get("spec") or {}).get("suspend"))  # R3: Kueue admits by un-suspending
    return conditions, status.get("failed"), status.get("succeeded"), deleting, suspended


# What a reconcile reads of a cached Job (of its spec, only ``suspend`` and the pod counts); the rest (the pod
# template with the step's script, managedFields) is most of its size, and 5,000 cached Jobs
# must fit DESIGN.md's memory.
JOB_METADATA_KEPT = ("name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences",
                     "creationTimestamp", "deletionTimestamp")


def trimmed_job(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    kept = {k: meta[k] for k in JOB_METADATA_KEPT if k in meta}
    trimmed: dict[str, Any] = {"metadata": kept, "status": job.get("status") or {}}
    spec = job.get("spec") or {}
    kept_spec: dict[str, Any] = {"suspend": True} if spec.get("suspend") else {}
    for count in ("completions", "parallelism"):  # a Job of more pods is not ended by one pod
        if spec.get(count, 1) != 1:
            kept_spec[count] = spec[count]
    if kept_spec:
        trimmed["spec"] = kept_spec
    return trimmed


def trimmed_workflow(body: Mapping[str, Any]) -> dict[str, Any]:
    """Without managedFields, which grow with every status patch and nothing here reads."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return dict(body)
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


class Store:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._workflows: dict[Key, dict[str, Any]] = {}
        self._jobs: dict[Key, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._relists = Relists()  # per kind being re-listed by kopf (see listed)
        # Per workflow, per Job name, per pod name: what the pod says (jobs.PodReport).
        self._pods: dict[Key, dict[str, dict[str, PodReport]]] = defaultdict(lambda: defaultdict(dict))
        self._orphans: set[tuple[Key, str]] = set()  # pod reports without a Job, at the last sweep

    def put_workflow(self, body: Mapping[str, Any]) -> bool:
        """Store a newer version; False if we have it already (e.g. our own write's echo)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self._lock:
            if not newer(body, self._workflows.get(key)):
                return False
            self._workflows[key] = trimmed_workflow(body)
            return True

    def drop_workflow(self, key: Key, uid: str = "") -> None:
        """Forget a deleted workflow and its Jobs, unless the cache already holds a newer object
        of that name: kopf handles each object's events in its own task, keyed by uid, so the
        deletion of one can be processed after the creation of the next."""
        with self._lock:
            if replaced(self._workflows.get(key), uid):
                return
            self._workflows.pop(key, None)
            self._jobs.pop(key, None)
            self._pods.pop(key, None)

    def workflow(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            return self._workflows.get(key)

    def workflow_keys(self) -> list[Key]:
        with self._lock:
            return list(self._workflows)

    def running_steps(self) -> dict[Key, int]:
        """Per workflow, the steps its cached status says are running (a matrix step's own entry
        is its copies' summary, not a step that runs: M2)."""
        with self._lock:
            return {key: sum(1 for s in ((body.get("status") or {}).get("steps") or {}).values()
                             if isinstance(s, Mapping) and s.get("phase") == "Running" and "copies" not in s)
                    for key, body in self._workflows.items()}

    def running_in_pools(self) -> dict[Key, dict[str, list[str]]]:
        """Per workflow, its running steps by StepPool (R2), from its cached status and spec."""
        found: dict[Key, dict[str, list[str]]] = {}
        with self._lock:
            for key, body in self._workflows.items():
                spec = body.get("spec") or {}
                pool_of = {s.get("name"): s.get("pool") for part in ("steps", "finally")
                           for s in spec.get(part) or () if isinstance(s, Mapping) and s.get("pool")}
                steps = (body.get("status") or {}).get("steps") or {}
                for name, entry in steps.items():
                    if not isinstance(entry, Mapping) or entry.get("phase") != "Running" or "copies" in entry:
                        continue
                    pool = pool_of.get(name) or pool_of.get(entry.get("matrixOf"))  # a copy: its step's
                    if pool:
                        found.setdefault(key, {}).setdefault(pool, []).append(name)
        return found

    def workflow_phases(self) -> list[str]:
        with self._lock:
            return [(w.get("status") or {}).get("phase", "Pending") for w in self._workflows.values()]

    def put_job(self, key: Key, job: Mapping[str, Any]) -> bool:
        """Store a newer version; True if it differs in what a reconcile reads."""
        name = job["metadata"]["name"]
        with self._lock:
            old = self._jobs[key].get(name)
            if not newer(job, old):
                return False
            self._jobs[key][name] = trimmed_job(job)
            return old is None or _job_signature(old) != _job_signature(job)

    def drop_job(self, key: Key, name: str, uid: str = "") -> None:
        """Forget a Job, unless the cache holds a newer one of that name (see drop_workflow)."""
        with self._lock:
            jobs = self._jobs.get(key, {})
            if replaced(jobs.get(name), uid):
                return
            jobs.pop(name, None)
            self._pods.get(key, {}).pop(name, None)

    def jobs(self, key: Key) -> dict[str, dict[str, Any]]:
        """Jobs of one workflow, by Job name."""
        with self._lock:
            return dict(self._jobs.get(key, {}))

    def listed(self, kind: str, key: Key, name: str = "") -> bool:
        """An object came in a (re-)listing: kopf lists after every watch gap (a 410 Gone) and
        sends no DELETED event for what went meanwhile. The first object of a listing starts
        one (True): the cache's objects of that kind are noted, each listed one is struck off,
        and what remains at :meth:`end_listing` may be gone."""
        with self._lock:
            return self._relists.listed(kind, (key, name), lambda: self._members(kind))

    def _members(self, kind: str) -> set[tuple[Key, str]]:
        if kind == "workflows":
            return {(k, "") for k in self._workflows}
        return {(k, n) for k, jobs in self._jobs.items() for n in jobs}

    def end_listing(self, kind: str) -> set[tuple[Key, str]]:
        """Cached objects the listing did not show: to confirm with a read before forgetting."""
        with self._lock:
            return self._relists.end(kind)

    def put_pod(self, key: Key, pod: Mapping[str, Any], deleted: bool = False) -> bool:
        """Record what a step's pod says; True if a reconcile should look at it now.

        That is when the pod's problem changes (it became unschedulable, or got scheduled),
        when it Succeeded (its step has ended),
        when a pod of a Job left pod-less for a while appears (it was failing to create one),
        and when a pod being deleted ends: its Job's ``Failed`` may already have been handled.
        A deleted pod's report is kept if it ended, as the record of its exit code. Reports of
        pods whose Job is not cached are pruned by :meth:`prune_pods`, not refused here: after
        a restart, kopf may list pods before their Jobs.
        """
        meta = pod.get("metadata") or {}
        job = (meta.get("labels") or {}).get(JOB_NAME_LABEL)
        if not job:
            return False
        report = pod_report(pod)
        with self._lock:
            pods = self._pods[key][job]
            old = pods.get(meta["name"])
            if deleted and not report.terminated:
                pods.pop(meta["name"], None)
                return False
            pods[meta["name"]] = report
            ended_while_deleted = report.terminated and bool(meta.get("deletionTimestamp")) and (
                old is None or not old.terminated)
            # A pod that Succeeded ends its step before its Job says so (jobs.succeeded_by_pod).
            succeeded = report.succeeded and (old is None or not old.succeeded)
            if old is None:
                job_obj = self._jobs.get(key, {}).get(job)
                created = parse_time(((job_obj or {}).get("metadata") or {}).get("creationTimestamp"))
                late = created is not None and self.clock() - created > POD_LESS_GRACE
                return bool(report.problem) or late or ended_while_deleted or succeeded
            return (old.problem, old.problem_message) != (report.problem, report.problem_message) or (
                ended_while_deleted or succeeded)

    def pod_reports(self, key: Key, job: str, job_uid: str = "") -> list[PodReport]:
        """Reports of the Job's pods; with ``job_uid``, of that very Job, not an earlier one of
        its name (a Workflow deleted and applied again reuses Job names)."""
        with self._lock:
            return of_job(self._pods.get(key, {}).get(job, {}).values(), job_uid)

    def pod_succeeded(self, key: Key, job: Mapping[str, Any]) -> bool:
        """A pod of that very Job Succeeded on its own: its step ended then, not with the Job."""
        meta = job.get("metadata") or {}
        uid = meta.get("uid")
        return a_pod_succeeded(uid, self.pod_reports(key, meta.get("name", ""), uid))

    def prune_pods(self) -> int:
        """Forget reports of pods whose Job the cache does not hold, on the second sweep that
        finds them so (a Job listed after its pods is not lost); returns how many went."""
        with self._lock:
            orphans = {(key, job) for key, jobs in self._pods.items() for job in jobs
                       if job not in self._jobs.get(key, {})}
            gone = orphans & self._orphans
            for key, job in gone:
                self._pods[key].pop(job, None)
                if not self._pods[key]:
                    del self._pods[key]
            self._orphans = orphans - gone
            return len(gone)

    def waiting_jobs(self, now: float, grace: float = POD_LESS_GRACE) -> set[Key]:
        """Workflows with an unfinished Job older than ``grace`` that has no ready pod.

        Such a Job may never change again: the Job controller fails to create its pod (only an
        Event says so), or the pod cannot be scheduled. The pod watch does not show it either:
        it sees pods only once they have ended (child_watches.POD_PHASES_WATCHED). So these
        workflows are reconciled every few seconds, and the reconcile reads the Job's Events or
        pods, backing off per Job."""
        found = set()
        with self._lock:
            for key, jobs in self._jobs.items():
                for job in jobs.values():
                    if not waits_for_pod(job):
                        continue
                    created = parse_time(job["metadata"].get("creationTimestamp"))
                    if created is not None and now - created > grace:
                        found.add(key)
                        break
        return found


def _finished_or_deleting(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    return bool((job.get("metadata") or {}).get("deletionTimestamp")) or any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or ())


def waits_for_pod(job: Mapping[str, Any]) -> bool:
    """The Job is unfinished and no pod of it is ready: none created yet, or one pending. A
    suspended Job (R3: waiting for Kueue) has no pod by design."""
    status = job.get("status") or {}
    if (job.get("spec") or {}).get("suspend"):
        return False
    return not _finished_or_deleting(job) and not status.get("ready") and not status.get("terminating")


def pod_less(job: Mapping[str, Any]) -> bool:
    """The Job is unfinished and has no pod: none active, none ended, none terminating."""
    status = job.get("status") or {}
    if any(status.get(field) for field in ("active", "failed", "succeeded", "terminating")):
        return False
    return not _finished_or_deleting(job)
