"""The scheduling rules: every rule of stepflow that decides a step's fate, and nothing else.

``decide`` is a pure function. Given the plan, what each step is observed to be doing, the
caps, the policy and the current time, it says which steps to start, skip and cancel, and what
the workflow's phase is. It reads no clock and does no I/O, so the local runner and the
operator share it, and a restarted operator or a replayed event gets the same answer again
(level-triggered, like Kubernetes' own controllers).

Rules implemented here (see DESIGN.md): G5 barriers, D1 dependsOn, D3 skip propagation, W1-W3
conditions, F1-F5 failure policies, X1-X4 finally steps, and suspend. Which ready steps may
start under the caps (C1, C2, R1, R2) is :mod:`stepflow.engine.admission`'s; the indexes that
make a decision cost what changed are :mod:`stepflow.engine.observations`'.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from stepflow.conditions import ConditionEvaluationError
from stepflow.engine.admission import Admitted, Caps, Queues, admit
from stepflow.engine.fan_out import expansion, state_of
from stepflow.engine.observations import (
    AllWaiting,
    Chain,
    PartStates,
    Waiting,
    first_unfinished,
    indexed,
)
from stepflow.engine.states import (
    CANCELLED,
    CONDITION_ERROR,
    CONDITION_FALSE,
    DATA_SKIPS,
    FAIL_FAST,
    FAILED,
    MATRIX_INVALID,
    OUTPUT_UNAVAILABLE,
    PENDING,
    PREREQUISITE_FAILED,
    PREREQUISITE_SKIPPED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    SUCCESS_SKIPS,
    SUSPENDED,
    TERMINAL,
    TIMEOUT,
    WAITING_FOR_MAIN,
    WAITING_FOR_PREREQUISITES,
    WAITING_FOR_SLOT,
    WORKFLOW_FAILED,
    Decision,
    StepState,
    Verdict,
    has_outputs,
    is_bad,
)
from stepflow.engine.wording import named_steps, quoted, skip_causes, why
from stepflow.matrix import Values
from stepflow.plan import Plan


def _frozen(d: Mapping[str, Verdict]) -> Mapping[str, Verdict]:
    return MappingProxyType(dict(d))


@dataclass
class _PartDecision:
    """What one part (main or finally) decided, before the two are combined."""

    start: list[str]
    skip: dict[str, Verdict]
    fail: dict[str, Verdict]
    cancel: dict[str, Verdict]
    waiting: Mapping[str, Verdict]
    phase: tuple[str, str, str]
    done: int
    unfinished: int
    failed: list[str]  # real failures: no continueOnError
    wake_at: float | None
    expand: Mapping[str, tuple[Values, ...]] = field(default_factory=dict)


def decide(
    plan: Plan,
    states: Mapping[str, StepState],
    *,
    now: float,
    started_at: float | None,
    max_concurrency: int | None = None,
    suspended: bool = False,
    global_slots: int | None = None,
    stop: Verdict | None = None,
    stop_finally: Verdict | None = None,
    pool_slots: Mapping[str, int | None] | None = None,
    queues: Queues | None = None,
) -> Decision:
    """Decide the next actions from the observed ``states`` (missing steps count as Pending).

    ``global_slots`` is how many steps the operator-wide cap lets this workflow start now; None
    means unlimited. ``pool_slots`` says the same per StepPool (R2): a pool missing from it does
    not exist, a value of None is unlimited, and None for the whole mapping leaves pools
    unenforced. ``queues`` answers for slots shared with other workflows (see
    :mod:`stepflow.engine.admission`). ``stop`` is an outside request to end the run (Ctrl-C):
    the main steps are handled like FailFast, and the finally steps still run (X1) unless
    ``stop_finally`` stops them too. Pass an :class:`Observations` kept across calls to pay only
    for what changed.
    """
    cap = max_concurrency if max_concurrency is not None else plan.spec.max_concurrency
    caps = Caps(cap, suspended, pool_slots, global_slots)
    observations = indexed(plan, states)
    main_plan, final_plan = plan.parts
    # workflow.failed is read by finally steps only (the plan refuses it in main steps, where it
    # would depend on timing): there it is the main steps' outcome, final by then.
    main = _evaluate(main_plan, observations.parts[0], observations, now=now, started_at=started_at,
                     stop=stop, workflow_failed=False)
    if final_plan is None:
        main_part = _part_decision(main, admit(main_plan, main.ready, main.part, caps, queues), suspended)
        return _decision(main_part, main_part, len(observations))
    if main.unfinished or main.skip or main.fail:
        # X1: the finally steps wait until every main step is over, as observed.
        main_part = _part_decision(main, admit(main_plan, main.ready, main.part, caps, queues), suspended)
        waiting = Chain(main_part.waiting, AllWaiting(observations.parts[1], Verdict(
            WAITING_FOR_MAIN, "runs once every main step is over")))
        combined = replace(main_part, waiting=waiting,
                           done=main_part.done + observations.parts[1].count(*TERMINAL))
        if main_part.phase[0] in TERMINAL:  # over once its skips are recorded: finally steps come next
            combined.phase = (RUNNING, "RunningFinally",
                              f"finally steps next; main steps: {main_part.phase[2]}")
        return _decision(combined, main_part, len(observations))
    # The main steps are over: only the finally steps can be admitted (the queues are asked once).
    main_part = _part_decision(main, Admitted(), suspended)
    final = _evaluate(final_plan, observations.parts[1], observations, now=now, started_at=None,
                      stop=stop_finally, workflow_failed=main_part.phase[0] == FAILED)
    final_part = _part_decision(final, admit(final_plan, final.ready, final.part, caps, queues), suspended)
    return _decision(_combine(main_part, final_part), final_part, len(observations))


def _decision(part: _PartDecision, last: _PartDecision, total: int) -> Decision:
    phase, reason, message = part.phase
    return Decision(
        start=tuple(last.start), skip=_frozen({**part.skip, **last.skip}),
        fail=_frozen({**part.fail, **last.fail}), cancel=_frozen({**part.cancel, **last.cancel}),
        waiting=part.waiting, phase=phase, reason=reason, message=message,
        done=part.done, total=total, wake_at=part.wake_at,
        expand=MappingProxyType({**part.expand, **last.expand}),
    )


def _combine(main: _PartDecision, final: _PartDecision) -> _PartDecision:
    """X4: the workflow fails if a main or a finally step failed for real; the message names
    both. While finally steps run, the workflow is Running, and says how the main steps ended."""
    main_phase, main_reason, main_message = main.phase
    phase, reason, message = final.phase
    if phase not in TERMINAL:
        if phase in (PENDING, RUNNING):  # the run is under way: its main steps are over
            phase, reason = RUNNING, "RunningFinally"
            message = f"running finally steps ({message}); main steps: {main_message}"
    elif main_phase == FAILED:
        phase, reason = FAILED, main_reason
        message = main_message + (f"; finally: {message}" if final.phase[0] == FAILED else "")
    elif phase == FAILED:
        message = f"main steps succeeded; finally: {message}"
    else:
        message = f"{main_message}; finally: {message}"
    return _PartDecision(
        start=final.start, skip=final.skip, fail=final.fail, cancel=final.cancel,
        waiting=Chain(main.waiting, final.waiting), phase=(phase, reason, message),
        done=main.done + final.done, unfinished=final.unfinished, failed=main.failed + final.failed,
        wake_at=None, expand=final.expand,
    )


def _evaluate(plan: Plan, part: PartStates, observations: Mapping[str, StepState], *, now: float,
              started_at: float | None, stop: Verdict | None, workflow_failed: bool) -> _Pass:
    """The rules for one list of steps before the caps: G5, D1, D3, W1-W3 and F1-F5."""
    spec = plan.spec
    failed = sorted((n for n in part.with_phase(FAILED) if not plan.step_by_name[n].continue_on_error),
                    key=plan.index_of)
    all_terminal = part.count(*TERMINAL) == len(part)
    deadline = started_at + spec.timeout_seconds if started_at is not None and spec.timeout_seconds else None
    timed_out = deadline is not None and now >= deadline and not all_terminal
    abort = stop or _abort_verdict(spec.failure_policy, failed, timed_out, spec.timeout_seconds)
    outcome = _Pass(plan, part, observations, failed, abort, workflow_failed)
    outcome.run()
    outcome.wake_at = deadline if deadline is not None and not timed_out else None
    return outcome


def _part_decision(outcome: _Pass, admitted: Admitted, suspended: bool) -> _PartDecision:
    """One part's decision: the rules' outcome with what the caps admitted, and the phase."""
    plan, part = outcome.plan, outcome.part
    waiting = {**outcome.waiting, **admitted.waiting}
    abort = outcome.abort
    cancel = {n: abort for n in sorted(part.with_phase(RUNNING), key=plan.index_of)} if abort else {}
    phase = _workflow_phase(plan, part, outcome, admitted.start, waiting, outcome.failed, abort, suspended)
    leaving = set(admitted.start) | set(outcome.skip) | set(outcome.fail) | set(outcome.expand)
    return _PartDecision(
        start=admitted.start, skip=outcome.skip, fail=outcome.fail, cancel=cancel,
        waiting=Waiting(plan, part, waiting, leaving), phase=phase,
        done=part.count(*TERMINAL) + outcome.decided, unfinished=outcome.unfinished, failed=outcome.failed,
        wake_at=outcome.wake_at if phase[0] not in TERMINAL else None, expand=outcome.expand,
    )


def _abort_verdict(policy: str, failed: list[str], timed_out: bool, timeout: int | None) -> Verdict | None:
    """F2 and F5: conditions under which running steps are stopped and nothing starts."""
    if timed_out:
        return Verdict(TIMEOUT, f"workflow timed out after {timeout}s")
    if policy == "FailFast" and failed:
        return Verdict(FAIL_FAST, f'stopped because step "{failed[0]}" failed (failurePolicy FailFast)')
    return None


def step_view(state: StepState) -> dict[str, Any]:
    """What a condition sees of a step (W2): phase, exit code (0 when none) and outputs."""
    return {"phase": state.phase, "exitCode": state.exit_code or 0, "outputs": dict(state.outputs)}


@dataclass
class _Pass:
    """One walk, in dependency order, over the pending steps whose fate may change now:
    skips (D3 and the policies), conditions (W1-W3) and readiness. Other pending steps keep
    waiting."""

    plan: Plan
    part: PartStates
    observations: Mapping[str, StepState]  # both parts: a finally step reads main steps (X2)
    failed: list[str]
    abort: Verdict | None
    workflow_failed: bool  # W2, for finally steps: the main steps ended Failed (X1)
    skip: dict[str, Verdict] = field(default_factory=dict)
    fail: dict[str, Verdict] = field(default_factory=dict)
    waiting: dict[str, Verdict] = field(default_factory=dict)
    expand: dict[str, tuple[Values, ...]] = field(default_factory=dict)  # M4
    ready: list[str] = field(default_factory=list)
    wake_at: float | None = None  # the workflow's deadline (F5), while it has not passed
    _bad_groups: set[int] = field(default_factory=set)

    @property
    def decided(self) -> int:
        return len(self.skip) + len(self.fail)

    @property
    def unfinished(self) -> int:
        return len(self.part) - self.part.count(*TERMINAL) - self.decided

    def run(self) -> None:
        plan = self.plan
        # F1: once a step fails, only the rest of its group may still start.
        open_groups = {plan.group_of[f] for f in self.failed}
        stop_after_group = plan.spec.failure_policy == "StopAfterGroup" and bool(self.failed)
        pending = self.part.with_phase(PENDING)
        decide_all = self.abort is not None or stop_after_group  # a policy decides every pending step
        order = plan.topological_index
        work = [(order[n], n) for n in (pending if decide_all else self.part.candidates & pending)]
        heapq.heapify(work)
        seen: set[str] = set()
        ready: set[str] = set()
        while work:
            _, name = heapq.heappop(work)
            if name in seen:
                continue
            seen.add(name)
            verdict = self._blocked(name)
            if verdict is None and self.abort is not None:
                verdict = self.abort
            if verdict is None and stop_after_group and plan.group_of[name] not in open_groups:
                verdict = Verdict(WORKFLOW_FAILED, f"not started: {named_steps(self.failed, 10)} failed "
                                                   "(failurePolicy StopAfterGroup)")
            if verdict is None:
                upstream = self._waiting_on(name)
                if upstream is not None:
                    self.waiting[name] = Verdict(WAITING_FOR_PREREQUISITES, f'waiting for "{upstream}"')
                    continue
                verdict = self._data_verdict(name)
                if verdict is None and self.plan.step_by_name[name].matrix:
                    verdict = self._expand(name)
                    if verdict is None:
                        continue  # its copies start once the executor has them (M4)
                if verdict is None:
                    ready.add(name)
                    continue
            if verdict.reason in (CONDITION_ERROR, MATRIX_INVALID):
                self.fail[name] = verdict
            else:
                self.skip[name] = verdict
            if self._outcome(name)[0]:
                self._bad_groups.add(plan.group_of[name])
            for after in self._affected_by(name):
                if after in pending and after not in seen:
                    heapq.heappush(work, (order[after], after))
        self.ready = sorted(ready, key=plan.index_of)

    def _expand(self, name: str) -> Verdict | None:
        """M4: a ready matrix step reads its list now, and starts nothing itself; or the verdict
        that ends it (MatrixInvalid, MatrixEmpty)."""
        found = expansion(self.plan, self.plan.step_by_name[name], self.observations)
        if isinstance(found, Verdict):
            return found
        self.expand[name] = found
        return None

    def _seen(self, name: str) -> StepState:
        return state_of(self.plan, name, self.observations)

    def _data_verdict(self, name: str) -> Verdict | None:
        """W3 and W1 for a step whose prerequisites are met: an output it reads is missing
        (its producer did not succeed), or its condition is false or cannot be evaluated.

        An env read with a ``default`` is never missing. A condition sees the outputs of a
        producer that did not succeed as an empty map, so ``has(steps.build.outputs.tag)`` is
        false there; only an evaluation that fails on such a map skips the step OutputUnavailable."""
        step = self.plan.step_by_name[name]
        defaults = step.output_defaults
        for var, producer, output in step.output_sources:
            if var not in defaults and not has_outputs(self._seen(producer)):
                return self._unavailable(producer, output)
        condition = self.plan.conditions.get(name)
        if condition is None:
            return None
        views = {ref: step_view(self._seen(ref)) for ref in condition.steps}
        workflow = {"name": self.plan.spec.name, "namespace": self.plan.spec.namespace or "",
                    "failed": self.workflow_failed}
        try:
            if condition.evaluate(views, workflow):
                return None
        except ConditionEvaluationError as exc:
            missing = next(((r.step, r.output or "") for r in condition.references if r.reads_outputs
                            and not has_outputs(self._seen(r.step))), None)
            if missing is not None:
                return self._unavailable(*missing)
            return Verdict(CONDITION_ERROR, f"when {condition.source!r} could not be evaluated: {exc}")
        return Verdict(CONDITION_FALSE, f"condition is false: {condition.source}")

    def _unavailable(self, producer: str, output: str) -> Verdict:
        state = self._seen(producer)
        what = f'output "{output}"' if output else "outputs"
        return Verdict(OUTPUT_UNAVAILABLE, f'step "{producer}" was {state.phase.lower()}{why(state)}, '
                                           f"so its {what} is unavailable")

    def _affected_by(self, name: str) -> Iterable[str]:
        """Steps a skip of ``name`` may skip in turn: its dependsOn dependents, and the next
        group's barrier members."""
        group = self.plan.group_of[name] + 1
        yield from self.plan.waiting_on_step(name)
        if group < len(self.plan.groups):
            yield from self.plan.barrier_members(group)

    def _outcome(self, name: str) -> tuple[bool, str]:
        """(is bad, phase) of a step, counting skips and failures decided earlier in this pass."""
        if name in self.skip:
            return self.skip[name].reason not in SUCCESS_SKIPS, SKIPPED  # W3, M4
        if name in self.fail:
            return not self.plan.step_by_name[name].continue_on_error, FAILED
        state = self.part[name]
        return is_bad(self.plan, name, state), state.phase

    def _blocked(self, name: str) -> Verdict | None:
        """D3: a failed or skipped prerequisite skips this step, naming the upstream step."""
        step = self.plan.step_by_name[name]
        if step.depends_on is not None:
            upstream = next((d for d in step.depends_on if self._outcome(d)[0]), None)
        elif self.plan.group_of[name] > 0:
            upstream = self._group_first_bad(self.plan.group_of[name] - 1)
        else:
            upstream = None
        if upstream is None:
            return None
        phase = self._outcome(upstream)[1]
        if phase == FAILED:
            return Verdict(PREREQUISITE_FAILED, f'prerequisite "{upstream}" failed')
        return Verdict(PREREQUISITE_SKIPPED, f'prerequisite "{upstream}" was {phase.lower()}')

    def _group_first_bad(self, group: int) -> str | None:
        if not self.part.group_has_bad(group) and group not in self._bad_groups:
            return None
        return next((m for m in self.plan.groups[group] if self._outcome(m)[0]), None)

    def _waiting_on(self, name: str) -> str | None:
        """The first prerequisite that has not yet succeeded, if any."""
        return first_unfinished(self.plan, self.part, self.plan.prerequisites(name))


def _workflow_phase(plan: Plan, part: PartStates, outcome: _Pass, start: list[str],
                    waiting_for: Mapping[str, Verdict], failed: list[str], abort: Verdict | None,
                    suspended: bool) -> tuple[str, str, str]:
    total = len(part)
    unfinished = total - part.count(*TERMINAL) - len(outcome.skip) - len(outcome.fail)
    running = part.count(RUNNING)
    if not unfinished:
        return _final_phase(plan, part, outcome, failed, abort)
    if suspended:
        return SUSPENDED, "Suspended", f"suspended; {running} step(s) still running"
    if abort is not None:
        return RUNNING, abort.reason, f"{abort.message}; stopping {running} running step(s)"
    if failed:
        return RUNNING, "StepsFailed", (f"{named_steps(failed)} failed; finishing "
                                        f"{running + len(start)} step(s) already due")
    if not running and not start and not part.count(*TERMINAL):
        return PENDING, "WaitingForSlot", "waiting for a slot to start"
    # Slot waits are decided after the pass, so count them from the final waiting map.
    waiting = sum(1 for v in waiting_for.values() if v.reason == WAITING_FOR_SLOT)
    slot_note = f", {waiting} waiting for a slot" if waiting else ""
    # Running means observed running: a step decided to start may still fail to (its Job's name
    # taken, say), so it is counted apart rather than as running.
    start_note = f", {len(start)} starting" if start else ""
    return RUNNING, "Running", f"{running} of {total} step(s) running{start_note}{slot_note}"


def _final_phase(plan: Plan, part: PartStates, outcome: _Pass, failed: list[str],
                 abort: Verdict | None) -> tuple[str, str, str]:
    """Every step is terminal: Succeeded unless something failed, was cancelled or was skipped
    for a reason other than a condition (W3), an output that made unavailable, or a skip of a
    prerequisite (such a chain starts at a failure, a cancel or a real skip, counted on their own)."""
    failed = sorted({*failed, *(n for n in outcome.fail if not plan.step_by_name[n].continue_on_error)},
                    key=plan.index_of)
    skips = [(n, part[n].reason) for n in part.with_phase(SKIPPED)]
    skips += [(n, v.reason) for n, v in outcome.skip.items()]
    cancelled = sorted(part.with_phase(CANCELLED), key=plan.index_of)
    tail = "".join([f"; {len(cancelled)} cancelled" if cancelled else "",
                    f"; {len(skips)} skipped" if skips else ""])
    if failed:
        return FAILED, "StepsFailed", f"{named_steps(failed)} failed" + tail
    stopped = [part[n] for n in cancelled] + [part[n] for n, _ in skips]
    if (abort is not None and abort.reason == TIMEOUT) or any(s.reason == TIMEOUT for s in stopped):
        return FAILED, TIMEOUT, f"workflow timed out after {plan.spec.timeout_seconds}s" + tail
    if cancelled or any(reason not in (*DATA_SKIPS, PREREQUISITE_SKIPPED) for _, reason in skips):
        first = part[cancelled[0]] if cancelled else None
        reason = first.reason if first is not None and first.reason else "Cancelled"
        return FAILED, reason, tail[2:]
    tolerated = sorted(part.with_phase(FAILED), key=plan.index_of)
    note = f" ({quoted(tolerated)} failed with continueOnError)" if tolerated else ""
    total = len(part)
    if skips:
        return SUCCEEDED, "Succeeded", (f"{total - len(skips)} of {total} step(s) succeeded, "
                                        f"{len(skips)} skipped by {skip_causes(skips)}{note}")
    return SUCCEEDED, "Succeeded", f"all {total} step(s) succeeded{note}"
