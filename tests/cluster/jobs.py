"""A simulated Job controller (and kubelet): Jobs get a Pod, run for a while, then finish.

Each Job's fate is an `Outcome` (duration, exit code, termination message, logs) chosen by a
behaviour: by default `by_script`, which reads `sleep N`, `exit N` and `echo ...` out of the
container's `sh -c` script so example workflows run as written; tests override it per Job name
or labels with `cluster.jobs.when(...)`, or take manual control with `Outcome(duration=None)` and
`cluster.jobs.finish(...)`. Durations (and activeDeadlineSeconds) are multiplied by `time_scale`.

What it writes follows the Kubernetes >= 1.31 Job controller: `startTime`/`active`; on success
`SuccessCriteriaMet` then `Complete`, `succeeded`, `completionTime`; on failure `FailureTarget`
and `Failed` with reason BackoffLimitExceeded or DeadlineExceeded. A failed attempt is retried
with a new Pod while `failed <= backoffLimit` (after `backoff` seconds; real clusters wait
10 s, 20 s, ...). Simplified: one Pod per attempt even with restartPolicy OnFailure, no
parallelism/completions > 1, no suspend, no ttlSecondsAfterFinished, no pod deletion on deadline.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import patches
from .resources import Registry, ResourceType
from .store import Event, Store, timestamp

Schedule = Callable[[float, Callable[[], None]], Any]


@dataclass(frozen=True)
class Outcome:
    duration: float | None = 0.0  # seconds, before time_scale; None: runs until finish()
    exit_code: int = 0
    message: str = ""  # the container's termination message
    logs: str | None = None  # pod log text; None: the script's echo lines


Behaviour = Callable[[dict[str, Any], int], Outcome]  # (job, attempt starting at 1) -> Outcome

_STATEMENTS = re.compile(r"\s*(?:;|&&|\|\||\n)\s*")


def script_of(job: dict[str, Any]) -> str:
    """The shell script of the Job's first container (`sh -c SCRIPT`), or its command line."""
    containers = job["spec"]["template"]["spec"].get("containers") or [{}]
    argv = [*containers[0].get("command", ()), *containers[0].get("args", ())]
    if "-c" in argv and argv.index("-c") + 1 < len(argv):
        return str(argv[argv.index("-c") + 1])
    return shlex.join(str(arg) for arg in argv)


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", text)
    if not match:
        return 0.0
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


def parse_script(script: str) -> Outcome:
    """Approximate a shell script: `sleep` adds time, `echo` logs, `exit N`/`false` end it."""
    duration, lines = 0.0, []
    for statement in _STATEMENTS.split(script):
        try:
            words = shlex.split(statement)
        except ValueError:
            words = statement.split()
        if not words:
            continue
        command, args = words[0], words[1:]
        if command == "sleep" and args:
            duration += _seconds(args[0])
        elif command == "echo":
            lines.append(" ".join(a for a in args if a not in ("-n", "-e")))
        elif command in ("exit", "false"):
            code = int(args[0]) if command == "exit" and args and args[0].isdigit() else \
                (1 if command == "false" else 0)
            return Outcome(duration, code, logs="".join(f"{line}\n" for line in lines))
    return Outcome(duration, 0, logs="".join(f"{line}\n" for line in lines))


def by_script(job: dict[str, Any], attempt: int) -> Outcome:
    return parse_script(script_of(job))


def outcomes(*sequence: Outcome) -> Behaviour:
    """One outcome per attempt, the last one repeating: outcomes(fail, succeed) = flaky step."""
    return lambda job, attempt: sequence[min(attempt, len(sequence)) - 1]


@dataclass
class JobRun:
    """What happened to one Job, for assertions on timing and concurrency."""

    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    behaviour: Behaviour
    started: float = field(default_factory=time.time)
    finished: float | None = None
    attempts: int = 0
    failed: int = 0
    exit_code: int | None = None
    pod: str | None = None
    timer: Any = None
    deadline: Any = None
    outcome: Outcome | None = None

    @property
    def done(self) -> bool:
        return self.finished is not None


@dataclass
class _Rule:
    labels: dict[str, str]
    name: re.Pattern[str] | None
    behaviour: Behaviour

    def matches(self, job: dict[str, Any]) -> bool:
        labels = job["metadata"].get("labels") or {}
        return (all(labels.get(k) == v for k, v in self.labels.items())
                and (self.name is None or self.name.search(job["metadata"]["name"]) is not None))


class JobController:
    def __init__(self, store: Store, registry: Registry, schedule: Schedule,
                 pod_logs: dict[tuple[str, str], str], time_scale: float = 1.0) -> None:
        self.store, self.registry, self.schedule, self.pod_logs = store, registry, schedule, pod_logs
        self.time_scale = time_scale
        self.backoff = 0.0
        self.default: Behaviour = by_script
        self.runs: list[JobRun] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        store.subscribe(self._on_event)

    # --- test-facing ---------------------------------------------------------------------------

    def when(self, outcome: Outcome | Sequence[Outcome] | Behaviour, *,
             step: str | None = None, labels: dict[str, str] | None = None,
             name: str | None = None) -> None:
        """Decide the fate of Jobs matching all the given criteria (the newest rule wins).
        `step` is shorthand for the label stepflow.dev/step; `name` is a regex."""
        if isinstance(outcome, Outcome):
            behaviour: Behaviour = outcomes(outcome)
        elif isinstance(outcome, Sequence):
            behaviour = outcomes(*outcome)
        else:
            behaviour = outcome
        wanted = dict(labels or {}, **({"stepflow.dev/step": step} if step else {}))
        with self._lock:
            self._rules.insert(0, _Rule(wanted, re.compile(name) if name else None, behaviour))

    def finish(self, name: str, namespace: str = "default", *, exit_code: int = 0,
               message: str = "") -> None:
        """End the running attempt of a Job now (for Outcome(duration=None) or to cut one short)."""
        self._later(0, lambda: self._finish_now(namespace, name,
                                                 Outcome(0, exit_code, message)))

    def run_of(self, name: str, namespace: str = "default") -> JobRun | None:
        matches = [r for r in self.runs if (r.namespace, r.name) == (namespace, name)]
        return matches[-1] if matches else None

    def running(self) -> list[JobRun]:
        return [r for r in self.runs if not r.done]

    # --- reacting to the store ----------------------------------------------------------------

    def _later(self, delay: float, fn: Callable[[], None]) -> Any:
        """Run fn on the server loop, atomically with respect to writes from other threads (a
        test deleting a Job must not slip in between our lookup and our status write)."""
        def locked() -> None:
            with self.store.lock:
                fn()

        return self.schedule(delay, locked)

    def _jobs(self) -> ResourceType:
        rt = self.registry.get("batch", "v1", "jobs")
        assert rt is not None
        return rt

    def _pods(self) -> ResourceType:
        rt = self.registry.get("", "v1", "pods")
        assert rt is not None
        return rt

    def _on_event(self, event: Event) -> None:
        if event.storage_key != "jobs.batch":
            return
        uid = event.obj["metadata"]["uid"]
        if event.type == "ADDED":
            self._later(0, lambda: self._start(uid, event.obj))
        elif event.type == "DELETED":
            self._later(0, lambda: self._stop(uid))

    def _behaviour(self, job: dict[str, Any]) -> Behaviour:
        with self._lock:
            for rule in self._rules:
                if rule.matches(job):
                    return rule.behaviour
        return self.default

    def _start(self, uid: str, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        if self.store.lookup(self._jobs(), meta["namespace"], meta["name"]) is None:
            return
        run = JobRun(meta["namespace"], meta["name"], uid, dict(meta.get("labels") or {}),
                     self._behaviour(job))
        self.runs.append(run)
        self._set_job_status(run, {"startTime": timestamp(), "active": 1, "ready": 0,
                                   "terminating": 0, "uncountedTerminatedPods": {}})
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline:
            run.deadline = self._later(deadline * self.time_scale, lambda: self._expire(run))
        self._launch(run)

    def _stop(self, uid: str) -> None:
        for run in self.runs:
            if run.uid == uid and not run.done:
                self._cancel(run)
                run.finished = time.time()

    def _cancel(self, run: JobRun) -> None:
        for handle in (run.timer, run.deadline):
            if handle is not None:
                handle.cancel()
        run.timer = run.deadline = None

    # --- attempts -----------------------------------------------------------------------------

    def _launch(self, run: JobRun) -> None:
        job = self.store.lookup(self._jobs(), run.namespace, run.name)
        if job is None or run.done:
            return
        run.attempts += 1
        run.outcome = outcome = run.behaviour(job, run.attempts)
        pod = self.store.create(self._pods(), run.namespace, _pod_for(job))
        run.pod = pod["metadata"]["name"]
        logs = outcome.logs if outcome.logs is not None else parse_script(script_of(job)).logs
        self.pod_logs[run.namespace, run.pod] = logs or ""
        self._set_pod_status(run, _running_status(pod))
        self._set_job_status(run, {"active": 1, "ready": 1})
        if outcome.duration is not None:
            run.timer = self._later(outcome.duration * self.time_scale,
                                    lambda: self._complete(run, outcome))

    def _finish_now(self, namespace: str, name: str, outcome: Outcome) -> None:
        run = self.run_of(name, namespace)
        if run is not None and not run.done:
            if run.timer is not None:
                run.timer.cancel()
            self._complete(run, outcome)

    def _complete(self, run: JobRun, outcome: Outcome) -> None:
        run.timer = None
        job = self.store.lookup(self._jobs(), run.namespace, run.name)
        self._terminate_pod(run, outcome.exit_code, outcome.message, "Completed"
                            if outcome.exit_code == 0 else "Error")
        if job is None or run.done:
            return
        if outcome.exit_code == 0:
            return self._succeed(run)
        run.failed += 1
        if run.failed <= job["spec"].get("backoffLimit", 6):
            self._set_job_status(run, {"failed": run.failed, "ready": 0})
            self._later(self.backoff, lambda: self._launch(run))
        else:
            self._fail(run, "BackoffLimitExceeded", "Job has reached the specified backoff limit",
                       outcome.exit_code)

    def _expire(self, run: JobRun) -> None:
        if run.done:
            return
        pod = self.store.lookup(self._pods(), run.namespace, run.pod or "")
        if pod is not None and pod.get("status", {}).get("phase") == "Running":
            self._terminate_pod(run, 143, "", "DeadlineExceeded")
            run.failed += 1
        self._fail(run, "DeadlineExceeded", "Job was active longer than specified deadline", 143)

    def _succeed(self, run: JobRun) -> None:
        self._cancel(run)
        run.finished, run.exit_code = time.time(), 0
        message = "Reached expected number of succeeded pods"
        self._set_job_status(run, {
            "active": None, "ready": 0, "succeeded": 1, "completionTime": timestamp(),
            "conditions": _conditions(("SuccessCriteriaMet", "Complete"), "CompletionsReached",
                                      message)})

    def _fail(self, run: JobRun, reason: str, message: str, exit_code: int) -> None:
        self._cancel(run)
        run.finished, run.exit_code = time.time(), exit_code
        self._set_job_status(run, {
            "active": None, "ready": 0, "failed": max(run.failed, 1),
            "conditions": _conditions(("FailureTarget", "Failed"), reason, message)})

    # --- writing status -----------------------------------------------------------------------

    def _set_job_status(self, run: JobRun, status: dict[str, Any]) -> None:
        if self.store.lookup(self._jobs(), run.namespace, run.name) is not None:
            self.store.patch(self._jobs(), run.namespace, run.name, {"status": status},
                             patches.MERGE, "status")

    def _set_pod_status(self, run: JobRun, status: dict[str, Any]) -> None:
        if run.pod and self.store.lookup(self._pods(), run.namespace, run.pod) is not None:
            self.store.patch(self._pods(), run.namespace, run.pod, {"status": status},
                             patches.MERGE, "status")

    def _terminate_pod(self, run: JobRun, exit_code: int, message: str, reason: str) -> None:
        pod = self.store.lookup(self._pods(), run.namespace, run.pod or "")
        if pod is None:
            return
        container = pod["spec"]["containers"][0]
        if not message and exit_code and \
                container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = "".join(self.pod_logs.get((run.namespace, pod["metadata"]["name"]), "")
                              .splitlines(keepends=True)[-80:])[-2048:]
        started = (pod.get("status") or {}).get("startTime", timestamp())
        terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started,
                      "finishedAt": timestamp(), "containerID": f"emulated://{run.pod}"}
        if message:
            terminated["message"] = message
        self._set_pod_status(run, {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": container["name"], "image": container["image"],
                                   "ready": False, "started": False, "restartCount": 0,
                                   "state": {"terminated": terminated}}]})


def _conditions(types: tuple[str, ...], reason: str, message: str) -> list[dict[str, Any]]:
    now = timestamp()
    return [{"type": t, "status": "True", "reason": reason, "message": message,
             "lastProbeTime": now, "lastTransitionTime": now} for t in types]


def _pod_for(job: dict[str, Any]) -> dict[str, Any]:
    meta, template = job["metadata"], job["spec"]["template"]
    return {
        "metadata": {
            "generateName": f"{meta['name']}-",
            "labels": dict(template.get("metadata", {}).get("labels") or {}),
            "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": patches.clone(template.get("spec") or {}),
    }


def _running_status(pod: dict[str, Any]) -> dict[str, Any]:
    now = timestamp()
    return {
        "phase": "Running", "startTime": now, "podIP": "10.0.0.1", "hostIP": "10.0.0.254",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "containerStatuses": [{"name": c["name"], "image": c["image"], "ready": True,
                               "started": True, "restartCount": 0,
                               "state": {"running": {"startedAt": now}}}
                              for c in pod["spec"]["containers"]],
    }
