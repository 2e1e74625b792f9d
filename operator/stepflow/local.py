"""Run a workflow on this machine: each step is a local process, the engine decides.

This adapter only observes processes and applies the engine's decisions; it
holds no scheduling rule of its own. It mirrors what a Job does: ``retries``
re-runs a failed process (backoffLimit), ``timeoutSeconds`` kills it
(activeDeadlineSeconds), and a failed step's last output lines become its
termination message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stepflow.engine import (
    CANCELLED,
    FAILED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    Decision,
    Observations,
    StepState,
    Verdict,
    apply_decision,
    cancelled,
    decide,
)
from stepflow.env_values import container_env, expand_references, resolve_env
from stepflow.matrix import expand
from stepflow.outputs import TERMINATION_MESSAGE_BYTES as OUTPUTS_LIMIT
from stepflow.outputs import output_env, with_outputs
from stepflow.plan import Plan
from stepflow.spec import PodSettings, Step, step_output_source
from stepflow.status import build_status
from stepflow.step_files import NotARegularFile, fresh, read_regular

INTERRUPTED = "Interrupted"
DEADLINE_EXCEEDED = "DeadlineExceeded"
KILL_GRACE_SECONDS = 2.0
TERMINATION_MESSAGE_BYTES = 1024

Listener = Callable[["LocalRun", str, str], None]


@dataclass
class _Process:
    task: asyncio.Task[StepState]
    verdict: Verdict | None = None  # why we are stopping it, if we are


class LocalRun:
    """One local execution of a plan.

    ``listener(run, event, step)`` is called on every step transition
    (``started``, ``succeeded``, ``failed``, ``skipped``, ``cancelled``,
    ``retrying``), so the CLI can draw a live view without polling.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        log_dir: Path,
        max_concurrency: int | None = None,
        pools: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        listener: Listener | None = None,
    ):
        self.plan = plan
        self.log_dir = log_dir
        self.max_concurrency = max_concurrency
        self.pool_limits = dict(pools or {})  # R2: --pool NAME=LIMIT; other pools are unlimited
        self.clock = clock
        self.listener = listener or (lambda run, event, step: None)
        # Kept indexed across decisions, so each one costs what changed, not the whole plan.
        self.states: Observations = Observations(plan)
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.decision: Decision | None = None
        self._processes: dict[str, _Process] = {}
        self._stop: Verdict | None = None
        self._stop_finally: Verdict | None = None
        self._wakeup = asyncio.Event()

    # --- public ---------------------------------------------------------------------------

    async def run(self) -> Decision:
        """Drive the workflow to a terminal phase and return the final decision."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = self.clock()
        while True:
            decision = self._decide()
            if decision.finished:
                break
            if decision.skip or decision.start or decision.fail or decision.expand:
                continue  # recorded; decide again at once, state changed
            await self._wait(decision.wake_at)
        self.finished_at = self.clock()
        self.decision = decision
        return decision

    def interrupt(self) -> None:
        """Ctrl-C: stop every main step's process and skip the rest; the finally steps still run
        (X1). A second Ctrl-C, or the first once only finally steps are left, stops them too."""
        verdict = Verdict(INTERRUPTED, "interrupted by the user")
        main = self.states.parts[0]
        if self._stop is None and main.count(*TERMINAL) < len(main):
            self._stop = verdict
        else:
            self._stop = self._stop or verdict
            self._stop_finally = verdict
        self._wakeup.set()

    def status(self) -> dict[str, Any]:
        """The status document, the same shape the operator writes to the Workflow."""
        decision = self.decision or decide(self.plan, self.states, now=self.clock(),
                                           started_at=self.started_at,
                                           max_concurrency=self.max_concurrency,
                                           pool_slots=self._pool_slots())
        return build_status(self.plan, self.states, decision, now=self.clock(),
                            started_at=self.started_at, finished_at=self.finished_at)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def outputs_path(self, name: str) -> Path:
        """The step's $STEPFLOW_OUTPUTS file (O1); emptied at each attempt."""
        return self.log_dir / f"{name}.outputs"

    # --- the loop -------------------------------------------------------------------------

    def _decide(self) -> Decision:
        now = self.clock()
        decision = decide(self.plan, self.states, now=now, started_at=self.started_at,
                          max_concurrency=self.max_concurrency, stop=self._stop,
                          stop_finally=self._stop_finally, pool_slots=self._pool_slots())
        self.decision = decision
        apply_decision(self.states, decision, now, self)
        return decision

    # --- the executor the engine's apply loop drives --------------------------------------

    def start(self, name: str, now: float) -> StepState:
        self.states[name] = state = StepState(phase=RUNNING, started_at=now, attempts=1)
        task = asyncio.ensure_future(self._run_step(self.plan.step_by_name[name]))
        self._processes[name] = _Process(task)
        self.listener(self, "started", name)  # the live view reads the state recorded above
        return state

    def stop(self, name: str, verdict: Verdict, now: float) -> StepState | None:
        """The process is killed; its step is recorded Cancelled once it has exited (_finish)."""
        process = self._processes.get(name)
        if process is not None and process.verdict is None:
            process.verdict = verdict
            process.task.cancel()
        return None

    def recorded(self, name: str, state: StepState) -> None:
        self.listener(self, "skipped" if state.phase == SKIPPED else "failed", name)

    def expand(self, expansions: Mapping[str, tuple[Mapping[str, str], ...]], now: float) -> None:
        """M4: the copies take their steps' places; the next decision starts them."""
        self.plan = expand(self.plan, expansions)
        self.states = Observations(self.plan, dict(self.states))
        for name in expansions:
            self.listener(self, "expanded", name)

    def _pool_slots(self) -> dict[str, int | None] | None:
        """R2 for one workflow: a pool's free slots are its limit less its running steps; a
        pool given no limit is unlimited (the CLI says so)."""
        if not self.plan.pools:
            return None
        slots: dict[str, int | None] = dict.fromkeys(self.plan.pools)
        running = set().union(*(part.with_phase(RUNNING) for part in self.states.parts))
        for pool, limit in self.pool_limits.items():
            if pool in slots:
                held = sum(1 for n in running if self.plan.step_by_name[n].pool == pool)
                slots[pool] = max(limit - held, 0)
        return slots

    async def _wait(self, wake_at: float | None) -> None:
        timeout = None if wake_at is None else max(wake_at - self.clock(), 0.0)
        self._wakeup.clear()
        waiter = asyncio.ensure_future(self._wakeup.wait())
        tasks = {p.task for p in self._processes.values()} | {waiter}
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for name, process in list(self._processes.items()):
            if process.task.done():
                self._finish(name, process)

    def _finish(self, name: str, process: _Process) -> None:
        del self._processes[name]
        if process.task.cancelled():
            verdict = process.verdict or Verdict(CANCELLED, "cancelled")
            self.states[name] = cancelled(self.states[name], verdict, self.clock())
            self.listener(self, "cancelled", name)
            return
        self.states[name] = process.task.result()
        self.listener(self, "succeeded" if self.states[name].phase == SUCCEEDED else "failed", name)

    # --- one step ---------------------------------------------------------------------------

    async def _run_step(self, step: Step) -> StepState:
        """Run the step's process, retrying like a Job's backoffLimit."""
        state = self.states[step.name]
        # Like activeDeadlineSeconds, timeoutSeconds bounds the whole step, retries included.
        deadline = None if step.timeout_seconds is None else time.monotonic() + step.timeout_seconds
        for attempt in range(1, step.retries + 2):
            state = replace(self.states[step.name], attempts=attempt)
            self.states[step.name] = state
            if attempt > 1:
                self.listener(self, "retrying", step.name)
            code, reason, message = await self._run_process(step, attempt, deadline)
            if code == 0:
                done = replace(state, phase=SUCCEEDED, reason="", message="",
                               finished_at=self.clock(), exit_code=0)
                if not step.outputs:
                    return done
                written, problem = await asyncio.to_thread(self._read_outputs, step.name)
                return with_outputs(step, done, written, problem)
            if reason == DEADLINE_EXCEEDED:
                break
        tail = await asyncio.to_thread(self._log_tail, step.name)
        return replace(state, phase=FAILED, reason=reason, message=message, exit_code=code,
                       finished_at=self.clock(), termination_message=tail)

    async def _run_process(self, step: Step, attempt: int,
                           deadline: float | None) -> tuple[int | None, str, str]:
        """Returns (exit code, reason, message); the exit code is None if it never exited."""
        # A new run starts a fresh log, so output (and termination messages) never mix runs. The
        # step may have left anything at these paths (a FIFO): they are created afresh, never
        # opened where they are (stepflow.step_files).
        outputs = self.outputs_path(step.name)
        try:
            fresh(outputs).close()  # a retry starts with no outputs, as a new pod does
            log = fresh(self.log_path(step.name), append=attempt > 1)
        except OSError as exc:
            what = f"cannot create its log or outputs file in {self.log_dir}: {exc.strerror or exc}"
            return 127, "Error", what
        with log:
            if attempt > 1:
                log.write(f"--- attempt {attempt} ---\n".encode())
                log.flush()
            declared = self._declared_env(step)
            argv = [expand_references(arg, declared) for arg in step.argv]
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                    env={**os.environ, **declared, "STEPFLOW_WORKFLOW": self.plan.spec.name,
                         "STEPFLOW_STEP": step.name, "STEPFLOW_OUTPUTS": str(outputs.resolve())},
                    cwd=step.working_dir, start_new_session=True)
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or value
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                if step.working_dir and not Path(step.working_dir).is_dir():
                    what = f"workingDir {step.working_dir!r} does not exist"  # not the command's fault
                else:
                    what = f"cannot start {step.argv[0]!r}: {reason}"
                log.write(f"stepflow: {what}\n".encode())
                return 127, "Error", what
            try:
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                code = await asyncio.wait_for(process.wait(), timeout=timeout)
            except TimeoutError:
                await _kill(process)
                return None, DEADLINE_EXCEEDED, f"exceeded timeoutSeconds ({step.timeout_seconds}s)"
            except asyncio.CancelledError:
                await _kill(process)
                raise
            # A container's exit ends every process in it; here, what the step's shell left in
            # the background (``sleep 100 &``) must not outlive the step either.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if code < 0:  # killed by a signal: report it the way a container runtime does (128+N)
            return 128 - code, "Error", f"killed by signal {-code} (exit code {128 - code})"
        return code, "Error", f"exited with code {code}"

    def _declared_env(self, step: Step) -> dict[str, str]:
        """The container's own env, as the operator declares it in the Job and the kubelet
        resolves it: params, then the defaults' and the step's env, each value expanded with the
        ones declared before it; params and outputs (O3) arrive exactly as given."""
        outputs = output_env(self.plan, step, self.states)
        path = str(self.outputs_path(step.name).resolve())
        return resolve_env(container_env(step.literals, path, self.plan.spec.defaults.env, step.env,
                                         outputs=outputs))

    def _read_outputs(self, name: str) -> tuple[bytes | None, str]:
        """The bytes of the outputs file, one past the kubelet's limit at most: enough to tell
        it is over; with why it could not be read, if it could not. Run off the event loop."""
        try:
            return read_regular(self.outputs_path(name), OUTPUTS_LIMIT + 1), ""
        except NotARegularFile as exc:
            return None, f"$STEPFLOW_OUTPUTS is {exc}, not a regular file"
        except OSError as exc:
            return None, f"$STEPFLOW_OUTPUTS cannot be read: {exc.strerror or exc}"

    def _log_tail(self, name: str) -> str:
        """The last lines of output, as a container's FallbackToLogsOnError would give."""
        try:
            data = read_regular(self.log_path(name), TERMINATION_MESSAGE_BYTES, tail=True)
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Stop the whole process group: ``sh -c`` children must not outlive their step.

    A cancel arriving meanwhile (FailFast, Ctrl-C) waits until the group is stopped, or a
    child ignoring SIGTERM would be left running.
    """
    stopping = asyncio.ensure_future(_stop_group(process))
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        await stopping
        raise


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, a grace period for the leader, then SIGKILL for whatever is left of the group:
    the leader exiting on SIGTERM says nothing of a child that ignores it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(process.wait()), timeout=KILL_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def unsupported_fields(plan: Plan) -> list[str]:
    """Fields a local run cannot honour; the CLI mentions them once instead of failing."""
    notes = []
    if any(s.image for s in plan.steps) or plan.spec.defaults.image:
        notes.append("image is ignored: steps run as local processes")
    if any("valueFrom" in v and step_output_source(v) is None for s in plan.steps for v in s.env) or any(
            "valueFrom" in v for v in plan.spec.defaults.env):
        notes.append("env valueFrom is ignored locally (only literal values are set)")
    if (any(s.resources for s in plan.steps) or plan.spec.defaults.resources) and plan.budget is None:
        notes.append("resources are ignored locally")
    elif plan.budget is not None:
        notes.append("resources are not enforced on the processes; spec.maxResources still budgets "
                     "which steps run at once")
    if plan.spec.queue_name:
        notes.append("queueName is ignored locally: there is no Kueue to admit the steps")
    if any(s.pod != PodSettings() for s in plan.steps) or plan.spec.defaults.pod != PodSettings():
        notes.append("securityContext, podSecurityContext, tolerations and nodeSelector are ignored "
                     "locally (there is no pod)")
    return notes
