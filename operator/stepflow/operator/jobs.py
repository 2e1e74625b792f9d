"""Pure functions between steps and Kubernetes Jobs: names, manifests, observations.

Nothing here talks to the API, so all of it is unit-tested without a cluster
(the dask-kubernetes ``build_*_spec`` pattern).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from stepflow.engine import FAILED, RUNNING, SUCCEEDED, TERMINAL, WAITING_FOR_ADMISSION, StepState
from stepflow.env_values import container_env
from stepflow.outputs import OUTPUTS_PATH
from stepflow.plan import Plan
from stepflow.spec import API_GROUP, API_VERSION, KIND, Step
from stepflow.status import parse_time

WORKFLOW_LABEL = "stepflow.dev/workflow"
STEP_LABEL = "stepflow.dev/step"
RUN_LABEL = "stepflow.dev/run"
POOL_LABEL = "stepflow.dev/pool"  # R2: a new leader counts the pools' holders from the Jobs
MATRIX_LABEL = f"{API_GROUP}/matrix-of"  # a copy's step (M2)
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # R3: the LocalQueue Kueue admits the Job from
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "stepflow"
JOB_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
CONTAINER_NAME = "step"
MAX_NAME = 63
RUN_FIELDS_IGNORED = ("suspend", "maxConcurrency")


def job_name(workflow: str, generation: int, step: str) -> str:
    """``<workflow>-<generation>-<step>``, shortened with a hash to at most 63 characters.

    Deterministic per run, so a restarted operator finds the Jobs it created
    instead of creating them twice.
    """
    name = f"{workflow}-{generation}-{step}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    # A cut can end on '.' or '-'; "a.-b" is not a DNS-1123 subdomain, so both are trimmed.
    return f"{name[: MAX_NAME - len(digest) - 1].rstrip('-.')}-{digest}"


# The CRD's defaults (deploy/crds/, checked by tests/manifests/test_crd.py): a field set to its
# default and a field left out are the same spec, whichever CRD version wrote the object.
CRD_DEFAULTS = {"failurePolicy": "StopAfterGroup", "maxConcurrency": 5, "suspend": False}
CRD_STEP_DEFAULTS = {"retries": 0, "continueOnError": False}


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Fingerprint of what defines a run; suspend and maxConcurrency never start a new one.

    It ignores what Kubernetes treats as no change, or an edit the CRD lets through mid-run
    would replace the run: the order of ``env`` (a map list keyed by name) and of ``dependsOn``
    (a set), and defaults present or absent. The order of steps counts: it is the plan.
    """
    relevant = {k: v for k, v in spec.items()
                if k not in RUN_FIELDS_IGNORED and CRD_DEFAULTS.get(k, ...) != v}
    if isinstance(relevant.get("defaults"), Mapping):
        relevant["defaults"] = _canonical_container(relevant["defaults"])
    for steps in ("steps", "finally"):
        if isinstance(relevant.get(steps), list):
            relevant[steps] = [_canonical_step(step) if isinstance(step, Mapping) else step
                               for step in relevant[steps]]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def legacy_spec_hash(spec: Mapping[str, Any]) -> str:
    """The fingerprint of releases before the canonical one above: a run recorded with it is the
    same run, so upgrading the operator never re-runs a finished workflow."""
    relevant = {k: v for k, v in spec.items() if k not in RUN_FIELDS_IGNORED}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _canonical_container(fields: Mapping[str, Any]) -> dict[str, Any]:
    canonical = dict(fields)
    if isinstance(canonical.get("env"), list):
        canonical["env"] = sorted(canonical["env"], key=lambda var: str((var or {}).get("name")))
    return canonical


def _canonical_step(step: Mapping[str, Any]) -> dict[str, Any]:
    canonical = {k: v for k, v in _canonical_container(step).items() if CRD_STEP_DEFAULTS.get(k, ...) != v}
    if isinstance(canonical.get("dependsOn"), list):
        canonical["dependsOn"] = sorted(map(str, canonical["dependsOn"]))
    return canonical


def build_job(plan: Plan, step: Step, *, namespace: str, owner_uid: str, generation: int,
              outputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Job manifest for one step of one run; ``outputs`` are the values of the step's
    ``stepOutput`` variables (O3), written in as plain values that the kubelet's ``$(NAME)``
    expansion leaves as they are."""
    spec = plan.spec
    labels = {
        WORKFLOW_LABEL: spec.name,
        STEP_LABEL: step.name,
        RUN_LABEL: str(generation),
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if step.pool:
        labels[POOL_LABEL] = step.pool
    if step.matrix_of is not None:  # M2: kubectl get jobs -l stepflow.dev/matrix-of=deploy
        labels[MATRIX_LABEL] = step.matrix_of
    pod_metadata = spec.defaults.pod_metadata.merged(step.pod_metadata)
    template_metadata: dict[str, Any] = {"labels": {**pod_metadata.labels, **labels}}
    if pod_metadata.annotations:
        template_metadata["annotations"] = dict(pod_metadata.annotations)
    job_labels = dict(labels)
    if spec.queue_name:  # R3: Kueue un-suspends the Job once its ClusterQueue has room
        job_labels[QUEUE_LABEL] = spec.queue_name
    job_spec: dict[str, Any] = {
        "backoffLimit": step.retries,
        "template": {
            "metadata": template_metadata,
            "spec": _pod_spec(plan, step, outputs or {}),
        },
    }
    if step.timeout_seconds:
        job_spec["activeDeadlineSeconds"] = step.timeout_seconds
    if spec.queue_name:
        job_spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec.name, generation, step.name),
            "namespace": namespace,
            "labels": job_labels,
            "annotations": {"stepflow.dev/step-type": step.type} if step.type else {},
            "ownerReferences": [{
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": KIND,
                "name": spec.name,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": job_spec,
    }


def _pod_spec(plan: Plan, step: Step, outputs: Mapping[str, str]) -> dict[str, Any]:
    defaults = plan.spec.defaults
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": step.image or defaults.image,
        "command": list(step.command) if step.script is None else ["sh", "-c", step.script],
        # The last log lines become the termination message of a failed step, unless it wrote
        # one; a step's outputs (O1) travel the same way, through $STEPFLOW_OUTPUTS.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if step.args:
        container["args"] = list(step.args)
    # T3: params first, so that command, args and env may use them through $(NAME); the step's
    # env wins over the defaults'; params and outputs (O3) literal, so that the kubelet's
    # expansion gives the container each value exactly as given.
    container["env"] = container_env(step.literals, OUTPUTS_PATH, defaults.env, step.env, outputs=outputs)
    resources = step.resources or defaults.resources
    if resources:
        container["resources"] = dict(resources)
    if step.working_dir:
        container["workingDir"] = step.working_dir
    settings = defaults.pod.merged(step.pod)
    if settings.security_context is not None:
        container["securityContext"] = dict(settings.security_context)
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if settings.pod_security_context is not None:
        pod["securityContext"] = dict(settings.pod_security_context)
    if settings.tolerations is not None:
        pod["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.node_selector:
        pod["nodeSelector"] = dict(settings.node_selector)
    service_account = step.service_account_name or plan.spec.service_account_name
    if service_account:
        pod["serviceAccountName"] = service_account
    else:
        # No API credentials in a step's pod unless the workflow asks for an identity.
        pod["automountServiceAccountToken"] = False
    return pod


def owned_by(job: Mapping[str, Any], uid: str) -> bool:
    """Whether the Job belongs to this very Workflow object.

    Job names repeat when a Workflow is deleted and created again under the same name, and the
    old Jobs can outlive it (garbage collection is asynchronous; ``--cascade=orphan`` keeps
    them). Only the owner reference's uid tells them apart.
    """
    refs = (job.get("metadata") or {}).get("ownerReferences") or ()
    return not uid or any(ref.get("uid") == uid for ref in refs)


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def job_outcome(job: Mapping[str, Any]) -> tuple[str, str, str]:
    """(phase, reason, message) from the Job's conditions, never from its counters.

    ``SuccessCriteriaMet`` arrives before ``Complete`` on Kubernetes >= 1.31 and is final.
    ``FailureTarget`` is not: on ``DeadlineExceeded`` the Job controller sets it, then stops the
    pods gracefully, and sets ``Failed`` only once they are gone. Until then the step is still
    running (its pod may still write to what a dependent would read), with the reason shown.
    """
    for kind in ("Complete", "SuccessCriteriaMet"):
        if _condition(job, kind) is not None:
            return SUCCEEDED, "", ""  # the phase says it all; status stays small
    condition = _condition(job, "Failed")
    if condition is not None:
        return FAILED, condition.get("reason") or "Failed", condition.get("message") or ""
    condition = _condition(job, "FailureTarget")
    if condition is not None:
        message = (condition.get("message") or "the Job failed").rstrip(".")
        return RUNNING, condition.get("reason") or "FailureTarget", f"{message}; its pod is stopping"
    if (job.get("spec") or {}).get("suspend"):
        queue = ((job.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL)
        where = f' (LocalQueue "{queue}")' if queue else ""
        return RUNNING, WAITING_FOR_ADMISSION, f"its Job is suspended, waiting for Kueue to admit it{where}"
    return RUNNING, "", ""


def observe_job(previous: StepState, job: Mapping[str, Any], now: float) -> StepState:
    """A step's state as its Job shows it; steps already terminal keep their recorded state.

    ``now`` is when the operator observes the Job. A Job's completionTime has
    whole seconds, so the real end lies in [completionTime, completionTime + 1)
    and no later than ``now``; bounding it so keeps a sub-second step from
    ending before the millisecond start the operator recorded.
    """
    if previous.phase in TERMINAL:
        return previous
    status = job.get("status") or {}
    meta = job.get("metadata") or {}
    phase, reason, message = job_outcome(job)
    started = (previous.started_at or parse_time(status.get("startTime"))
               or parse_time(meta.get("creationTimestamp")))
    if previous.reason == WAITING_FOR_ADMISSION and reason != WAITING_FOR_ADMISSION:
        # R3: admitted. The Job controller restarts startTime on resume; the step starts then,
        # not when it was queued.
        started = max(started or 0.0, parse_time(status.get("startTime")) or now)
    # The update that carries SuccessCriteriaMet or FailureTarget may still list the last pod
    # under uncountedTerminatedPods; the counters catch up later, after the step is over.
    uncounted = status.get("uncountedTerminatedPods") or {}
    attempts = max(previous.attempts,
                   int(status.get("failed") or 0) + int(status.get("succeeded") or 0)
                   + int(status.get("active") or 0)
                   + len(uncounted.get("failed") or ()) + len(uncounted.get("succeeded") or ()), 1)
    finished = None
    if phase in TERMINAL:
        completed = parse_time(status.get("completionTime")) or _condition_time(job)
        finished = now if completed is None else min(now, completed + 1.0)
        finished = max(finished, started or finished)
    return replace(previous, phase=phase, reason=reason, message=message, started_at=started,
                   finished_at=finished, attempts=attempts, job_name=meta.get("name", ""),
                   exit_code=0 if phase == SUCCEEDED else previous.exit_code)


def _condition_time(job: Mapping[str, Any]) -> float | None:
    times = [parse_time(c.get("lastTransitionTime"))
             for c in (job.get("status") or {}).get("conditions") or () if c.get("status") == "True"]
    return max((t for t in times if t is not None), default=None)


@dataclass(frozen=True)
class PodReport:
    """What one of a Job's pods says that the Job does not: how the step's container ended, or
    why the pod cannot run. Kept after the pod is deleted: a step stopped by its deadline loses
    its pod, and this is the only record of its exit code."""

    created: str
    job_uid: str = ""  # the Job it belongs to: a Job of the same name may come later
    terminated: bool = False
    exit_code: int | None = None
    message: str = ""
    problem: str = ""  # the reason the pod cannot run, e.g. Unschedulable
    problem_message: str = ""
    # The pod Succeeded on its own: not while being deleted, as a pod stopped by its Job's
    # deadline, by Kueue or by a cancel may exit 0 on SIGTERM.
    succeeded: bool = False


def pod_report(pod: Mapping[str, Any]) -> PodReport:
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    created = meta.get("creationTimestamp") or ""
    job_uid = next((ref.get("uid", "") for ref in meta.get("ownerReferences") or ()
                    if ref.get("kind") == "Job"), "")
    succeeded = status.get("phase") == "Succeeded" and not meta.get("deletionTimestamp")
    for container in status.get("containerStatuses") or ():
        state = container.get("state") or {}
        terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
        if container.get("name") == CONTAINER_NAME and terminated:
            message = (terminated.get("message") or terminated.get("reason") or "").strip()
            # A success keeps its whole message: it carries the step's outputs (O1).
            kept = message[-1024:] if terminated.get("exitCode") else (terminated.get("message") or "")
            return PodReport(created, job_uid, True, terminated.get("exitCode"), kept, succeeded=succeeded)
    for condition in status.get("conditions") or ():
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            return PodReport(created, job_uid, problem="Unschedulable",
                             problem_message=(condition.get("message") or "")[:1024])
    return PodReport(created, job_uid)


def a_pod_succeeded(job_uid: str | None, reports: Iterable[PodReport]) -> bool:
    """A pod of the Job of that very uid (not of an earlier Job of the name) Succeeded on its own."""
    return bool(job_uid) and any(r.succeeded and r.job_uid == job_uid for r in reports)


def succeeded_by_pod(previous: StepState, job: Mapping[str, Any], reports: Iterable[PodReport],
                     now: float) -> StepState:
    """The step Succeeded if its Job's one pod did, while the Job still says nothing.

    The Job controller batches pod updates for a second before it marks a Job Complete; the
    pod's end is the step's end, so waiting for the Job would add that second to every step of
    a chain. Only a Job of one completion and one pod at a time qualifies (stepflow builds no
    other), not suspended, whose state shows no failure yet (``previous`` is its observed
    state: a FailureTarget means the Job controller is stopping the pod, whatever it exits
    with), and only a pod of that very Job that ended on its own. The Job stays the record:
    if its deadline passes before the Job controller counts the success, the Job says
    DeadlineExceeded while the step, whose command exited 0 unstopped, stays Succeeded.
    """
    spec = job.get("spec") or {}
    uid = (job.get("metadata") or {}).get("uid")
    if (previous.phase != RUNNING or previous.reason or not uid or spec.get("suspend")
            or spec.get("completions", 1) != 1 or spec.get("parallelism", 1) != 1):
        return previous
    mine = [r for r in reports if r.job_uid == uid]
    if not a_pod_succeeded(uid, mine):
        return previous
    ended = max(now, previous.started_at or now)
    return replace(previous, phase=SUCCEEDED, finished_at=ended, exit_code=0,
                   attempts=max(previous.attempts, len(mine)))


def of_job(reports: Iterable[PodReport], job_uid: str) -> list[PodReport]:
    """The reports of pods of that very Job, not of an earlier Job of its name (a Workflow
    deleted and applied again reuses Job names). An unknown uid on either side matches."""
    return [r for r in reports if not job_uid or r.job_uid in ("", job_uid)]


def failure_details(reports: Iterable[PodReport]) -> tuple[int | None, str]:
    """Exit code and termination message of the step container in the Job's newest pod, once
    it has ended; (None, "") while it has not (its watch event may not have arrived yet)."""
    newest = max(reports, key=lambda r: r.created, default=None)
    if newest is None or not newest.terminated:
        return None, ""
    return newest.exit_code, newest.message


def success_message(reports: Iterable[PodReport]) -> str | None:
    """The termination message of the Job's newest pod once it exited 0: the step's outputs.
    None while no such pod is known."""
    newest = max(reports, key=lambda r: r.created, default=None)
    if newest is None or not newest.terminated or newest.exit_code != 0:
        return None
    return newest.message


def pod_problem(reports: Iterable[PodReport]) -> tuple[str, str]:
    """Why the Job's newest pod cannot run, if it cannot: (reason, message) or ("", "")."""
    newest = max(reports, key=lambda r: r.created, default=None)
    if newest is None or not newest.problem:
        return "", ""
    return newest.problem, newest.problem_message
