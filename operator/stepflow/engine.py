"""The scheduler: every scheduling rule of stepflow, and nothing else.

``decide`` is a pure function. Given the plan, what each step is observed to
be doing, the caps, the policy and the current time, it says which steps to
start, skip and cancel, and what the workflow's phase is. It reads no clock
and does no I/O, so the local runner and the operator share it, and a
restarted operator or a replayed event gets the same answer again
(level-triggered, like Kubernetes' own controllers).

Rules implemented here (see DESIGN.md): G5 barriers, D1 dependsOn, D3 skip
propagation, C1 per-workflow cap, C2 operator-wide first-come-first-served
cap (:class:`SlotQueue`), R1 resource budgets, R2 StepPools (:class:`PoolQueue`), F1-F5
failure policies, and suspend.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import islice
from types import MappingProxyType
from typing import Any

from stepflow import capacity
from stepflow.conditions import ConditionEvaluationError
from stepflow.plan import Plan

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED = (
    "Pending", "Running", "Succeeded", "Failed", "Skipped", "Cancelled",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, SKIPPED, CANCELLED})
SUSPENDED = "Suspended"  # a workflow phase only

# Step reasons the engine gives.
WAITING_FOR_SLOT = "WaitingForSlot"
WAITING_FOR_RESOURCES = "WaitingForResources"  # R1: it does not fit in spec.maxResources yet
WAITING_FOR_POOL = "WaitingForPool"  # R2: every slot of its StepPool is held
POOL_NOT_FOUND = "PoolNotFound"  # R2: its StepPool does not exist (yet)
# R3, given by the operator: the step's Job waits for Kueue to admit it. The engine sees the
# step as running, so it counts against every cap from its Job's creation; status shows Pending.
WAITING_FOR_ADMISSION = "WaitingForAdmission"
WAITING_FOR_PREREQUISITES = "WaitingForPrerequisites"
PREREQUISITE_FAILED = "PrerequisiteFailed"
PREREQUISITE_SKIPPED = "PrerequisiteSkipped"
WORKFLOW_FAILED = "WorkflowFailed"
FAIL_FAST = "FailFast"
TIMEOUT = "Timeout"
CONDITION_FALSE = "ConditionFalse"  # W1: skipped, and counts as succeeded for scheduling (W3)
CONDITION_ERROR = "ConditionError"  # W2: the condition failed to evaluate; the step fails
OUTPUT_UNAVAILABLE = "OutputUnavailable"  # W3: it reads an output its producer never made
DATA_SKIPS = (CONDITION_FALSE, OUTPUT_UNAVAILABLE)  # skips that do not fail the workflow
WAITING_FOR_MAIN = "WaitingForMainSteps"  # X1: a finally step before the main steps are over
# Executor-given reasons of O2, for a step that exited 0.
MISSING_OUTPUT = "MissingOutput"
OUTPUTS_TOO_LARGE = "OutputsTooLarge"


@dataclass(frozen=True)
class StepState:
    """What an executor observed about one step. Times are seconds since the epoch."""

    phase: str = PENDING
    reason: str = ""
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    exit_code: int | None = None
    termination_message: str = ""
    job_name: str = ""
    outputs: Mapping[str, str] = field(default_factory=dict)  # O2: a succeeded step's declared outputs


@dataclass(frozen=True)
class Verdict:
    """A reason and a human message, attached to a skip, cancel or wait."""

    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What the executor should do now, and how the workflow stands."""

    start: tuple[str, ...]
    skip: Mapping[str, Verdict]
    fail: Mapping[str, Verdict]  # failed without running: ConditionError (W2)
    cancel: Mapping[str, Verdict]
    waiting: Mapping[str, Verdict]
    phase: str
    reason: str
    message: str
    done: int
    total: int
    wake_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.phase in (SUCCEEDED, FAILED)

    @property
    def progress(self) -> str:
        return f"{self.done}/{self.total}"


def _frozen(d: Mapping[str, Verdict]) -> Mapping[str, Verdict]:
    return MappingProxyType(dict(d))


def succeeded_for_scheduling(plan: Plan, name: str, state: StepState) -> bool:
    """F4/D3/W3: success, a failure the step declared harmless with continueOnError, or a skip
    by its own condition."""
    if state.phase == SUCCEEDED:
        return True
    if state.phase == SKIPPED:
        return state.reason == CONDITION_FALSE
    return state.phase == FAILED and plan.step_by_name[name].continue_on_error


def _is_bad(plan: Plan, name: str, state: StepState) -> bool:
    """A terminal outcome that blocks whatever waits on this step."""
    return state.phase in TERMINAL and not succeeded_for_scheduling(plan, name, state)


_PENDING = StepState()


class _Index(MutableMapping[str, StepState]):
    """One part's observed states (the main steps, or the finally steps), with the indexes
    :func:`decide` reads kept up to date as states change, so that a decision costs what
    changed and what is ready, not the size of the workflow."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self._states: dict[str, StepState] = {s.name: _PENDING for s in plan.steps}
        self._by_phase: dict[str, set[str]] = {phase: set() for phase in (*TERMINAL, RUNNING, PENDING)}
        self._by_phase[PENDING].update(self._states)
        groups = plan.groups
        self._group_terminal = [0] * len(groups)
        self._group_bad = [0] * len(groups)
        # Pending steps whose fate may change now: nothing to wait for, or a prerequisite ended.
        self.candidates: set[str] = {s.name for s in plan.steps if not plan.prerequisites(s.name)}

    def __getitem__(self, name: str) -> StepState:
        return self._states[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __delitem__(self, name: str) -> None:
        self[name] = _PENDING

    def __setitem__(self, name: str, state: StepState) -> None:
        old = self._states[name]
        self._states[name] = state
        if old.phase != state.phase:
            self._by_phase.setdefault(old.phase, set()).discard(name)
            self._by_phase.setdefault(state.phase, set()).add(name)
            if state.phase == PENDING:
                self.candidates.add(name)  # back to pending (rare): look at it again
            elif old.phase == PENDING:
                self.candidates.discard(name)  # keeps the set as small as what is pending
        was_terminal, is_terminal = old.phase in TERMINAL, state.phase in TERMINAL
        was_bad, is_bad = _is_bad(self.plan, name, old), _is_bad(self.plan, name, state)
        if was_terminal == is_terminal and was_bad == is_bad:
            return
        group = self.plan.group_of[name]
        self._group_terminal[group] += is_terminal - was_terminal
        self._group_bad[group] += is_bad - was_bad
        if is_terminal:
            self.candidates.update(self.plan.waiting_on_step(name))
            if group + 1 < len(self.plan.groups) and (
                    is_bad or self._group_terminal[group] == len(self.plan.groups[group])):
                self.candidates.update(self.plan.barrier_members(group + 1))

    def with_phase(self, phase: str) -> set[str]:
        return self._by_phase.get(phase, set())

    def count(self, *phases: str) -> int:
        return sum(len(self._by_phase.get(p, ())) for p in phases)

    def group_has_bad(self, group: int) -> bool:
        return self._group_bad[group] > 0


class Observations(MutableMapping[str, StepState]):
    """Every step's observed state, indexed per part (main steps, finally steps), kept across
    decisions by an executor. A plain mapping passed to ``decide`` is indexed on the spot (one
    pass). It is derived data only: ``decide`` answers exactly as it would for a dict of the
    same states, which the property tests check."""

    def __init__(self, plan: Plan, states: Mapping[str, StepState] | None = None):
        self.plan = plan
        main, final = plan.parts
        self.parts = (_Index(main),) if final is None else (_Index(main), _Index(final))
        self._final = frozenset() if final is None else frozenset(s.name for s in final.steps)
        for name, state in (states or {}).items():
            if name in plan.step_by_name:
                self[name] = state

    def _part(self, name: str) -> _Index:
        return self.parts[1] if name in self._final else self.parts[0]

    def __getitem__(self, name: str) -> StepState:
        return self._part(name)[name]

    def __setitem__(self, name: str, state: StepState) -> None:
        self._part(name)[name] = state

    def __delitem__(self, name: str) -> None:
        self[name] = _PENDING

    def __iter__(self) -> Iterator[str]:
        return (name for part in self.parts for name in part)

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)


def _indexed(plan: Plan, states: Mapping[str, StepState]) -> Observations:
    if isinstance(states, Observations) and states.plan is plan:
        return states
    return Observations(plan, states)


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
) -> Decision:
    """Decide the next actions from the observed ``states`` (missing steps count as Pending).

    ``global_slots`` is how many steps the operator-wide cap lets this workflow
    start now (from :class:`SlotQueue`); None means unlimited. ``pool_slots`` says the same
    per StepPool (R2, from :class:`PoolQueue`): a pool missing from it does not exist, a value
    of None is unlimited, and None for the whole mapping leaves pools unenforced. ``stop`` is an
    outside request to end the run (Ctrl-C): the main steps are handled like FailFast, and
    the finally steps still run (X1) unless ``stop_finally`` stops them too.
    Pass an :class:`Observations` kept across calls to pay only for what changed.
    """
    spec = plan.spec
    cap = max_concurrency if max_concurrency is not None else spec.max_concurrency
    observed = _indexed(plan, states)
    main_plan, final_plan = plan.parts
    main = _decide_part(main_plan, observed.parts[0], observed, now=now, started_at=started_at, cap=cap,
                        suspended=suspended, global_slots=global_slots, stop=stop, earlier_failed=[],
                        pool_slots=pool_slots)
    if final_plan is None:
        return _decision(main, main, len(observed))
    if main.unfinished or main.skip or main.fail:
        # X1: the finally steps wait until every main step is over, as observed.
        waiting = _Chain(main.waiting, _AllWaiting(observed.parts[1], Verdict(
            WAITING_FOR_MAIN, "runs once every main step is over")))
        combined = replace(main, waiting=waiting, done=main.done + observed.parts[1].count(*TERMINAL))
        if main.phase[0] in TERMINAL:  # over once its skips are recorded: finally steps come next
            combined.phase = (RUNNING, "RunningFinally", f"finally steps next; main steps: {main.phase[2]}")
        return _decision(combined, main, len(observed))
    final = _decide_part(final_plan, observed.parts[1], observed, now=now, started_at=None, cap=cap,
                         suspended=suspended, global_slots=global_slots, stop=stop_finally,
                         earlier_failed=main.failed, pool_slots=pool_slots)
    return _decision(_combine(main, final), final, len(observed))


def _decision(part: _PartDecision, last: _PartDecision, total: int) -> Decision:
    phase, reason, message = part.phase
    return Decision(
        start=tuple(last.start), skip=_frozen({**part.skip, **last.skip}),
        fail=_frozen({**part.fail, **last.fail}), cancel=_frozen({**part.cancel, **last.cancel}),
        waiting=part.waiting, phase=phase, reason=reason, message=message,
        done=part.done, total=total, wake_at=part.wake_at,
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
        waiting=_Chain(main.waiting, final.waiting), phase=(phase, reason, message),
        done=main.done + final.done, unfinished=final.unfinished, failed=main.failed + final.failed,
        wake_at=None,
    )


def _decide_part(plan: Plan, observed: _Index, everything: Mapping[str, StepState], *, now: float,
                 started_at: float | None, cap: int, suspended: bool, global_slots: int | None,
                 stop: Verdict | None, earlier_failed: list[str],
                 pool_slots: Mapping[str, int | None] | None) -> _PartDecision:
    """The rules for one list of steps: G5, D1, D3, W1-W3, C1, C2, R1, R2, F1-F5 and suspend."""
    spec = plan.spec
    failed = sorted((n for n in observed.with_phase(FAILED) if not plan.step_by_name[n].continue_on_error),
                    key=plan.index_of)
    all_terminal = observed.count(*TERMINAL) == len(observed)
    deadline = started_at + spec.timeout_seconds if started_at is not None and spec.timeout_seconds else None
    timed_out = deadline is not None and now >= deadline and not all_terminal
    abort = stop or _abort_verdict(spec.failure_policy, failed, timed_out, spec.timeout_seconds)

    outcome = _Pass(plan, observed, everything, failed, abort, bool(earlier_failed or failed))
    outcome.run()
    running = observed.count(RUNNING)
    start, waiting = [], dict(outcome.waiting)
    budget = _Budget(plan, observed) if plan.budget is not None else None
    pools = dict(pool_slots) if pool_slots is not None else None
    for name in outcome.ready:  # ready is in document order (C1)
        pool = plan.step_by_name[name].pool
        if suspended:
            waiting[name] = Verdict(SUSPENDED, "workflow is suspended")
        elif running + len(start) >= cap:
            waiting[name] = Verdict(WAITING_FOR_SLOT, f"waiting for a slot (maxConcurrency {cap})")
        elif (verdict := _capacity_wait(name, pool, budget, pools)) is not None:
            waiting[name] = verdict
        elif global_slots is not None and len(start) >= global_slots:
            waiting[name] = Verdict(WAITING_FOR_SLOT, "waiting for a slot (operator-wide limit)")
        else:
            start.append(name)
            if budget is not None:
                budget.take(name)
            if pool is not None and pools is not None and pools[pool] is not None:
                pools[pool] -= 1
    cancel = {n: abort for n in sorted(observed.with_phase(RUNNING), key=plan.index_of)} if abort else {}
    phase = _workflow_phase(plan, observed, outcome, start, waiting, failed, abort, suspended)
    decided = len(outcome.skip) + len(outcome.fail)
    return _PartDecision(
        start=start, skip=outcome.skip, fail=outcome.fail, cancel=cancel,
        waiting=_Waiting(plan, observed, waiting, set(start) | set(outcome.skip) | set(outcome.fail)),
        phase=phase, done=observed.count(*TERMINAL) + decided,
        unfinished=len(observed) - observed.count(*TERMINAL) - decided, failed=failed,
        wake_at=deadline if deadline is not None and not timed_out and phase[0] not in TERMINAL else None,
    )


def _capacity_wait(name: str, pool: str | None, budget: _Budget | None,
                   pools: Mapping[str, int | None] | None) -> Verdict | None:
    """R1, then R2: why the step may not start now, if it may not."""
    if budget is not None and (verdict := budget.wait(name)) is not None:
        return verdict
    if pool is None or pools is None:
        return None
    return _pool_wait(pool, pools)


def _pool_wait(pool: str, slots: Mapping[str, int | None]) -> Verdict | None:
    """R2: why a step may not take a slot of ``pool`` now, if it may not."""
    if pool not in slots:
        return Verdict(POOL_NOT_FOUND, f'StepPool "{pool}" does not exist; the step starts once it does')
    left = slots[pool]
    if left is None or left > 0:
        return None
    return Verdict(WAITING_FOR_POOL, f'waiting for a slot of StepPool "{pool}"')


class _Budget:
    """R1 within one decision: the requests of the running steps and of those started so far.

    A ready step that does not fit holds back the later ready steps that ask for a resource it
    is short of, so a large step is not overtaken again and again by smaller ones; a step that
    asks for none of those still starts.
    """

    def __init__(self, plan: Plan, observed: _Index):
        self.plan = plan
        self.limit: Mapping[str, Decimal] = plan.budget or {}
        self.used: dict[str, Decimal] = {}
        for name in observed.with_phase(RUNNING):
            capacity.add(self.used, self._need(name))
        self.short: dict[str, str] = {}  # resource -> the first step waiting for it

    def _need(self, name: str) -> Mapping[str, Decimal]:
        return {r: q for r, q in self.plan.requests.get(name, {}).items() if r in self.limit}

    def wait(self, name: str) -> Verdict | None:
        need = self._need(name)
        blocker = next((self.short[r] for r in need if r in self.short and need[r] > 0), None)
        if blocker is not None:
            return Verdict(WAITING_FOR_RESOURCES, f'waiting behind "{blocker}" for {capacity.describe(need)} '
                                                  "(maxResources)")
        if capacity.fits(need, self.used, self.limit):
            return None
        lacking = [r for r, q in need.items() if self.used.get(r, 0) + q > self.limit[r]]
        for resource in lacking:
            self.short.setdefault(resource, name)
        free = capacity.free(self.used, self.limit)
        return Verdict(WAITING_FOR_RESOURCES, f"needs {capacity.describe(need, lacking)}; free "
                                              f"{capacity.describe(free, lacking)} of maxResources "
                                              f"{capacity.describe(self.limit, lacking)}")

    def take(self, name: str) -> None:
        capacity.add(self.used, self._need(name))


class _Chain(Mapping[str, Verdict]):
    """Two parts' waiting maps read as one."""

    def __init__(self, first: Mapping[str, Verdict], second: Mapping[str, Verdict]):
        self._maps = (first, second)

    def __getitem__(self, name: str) -> Verdict:
        for mapping in self._maps:
            if name in mapping:
                return mapping[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for mapping in self._maps for name in mapping)

    def __len__(self) -> int:
        return sum(len(m) for m in self._maps)

    def __contains__(self, name: object) -> bool:
        return any(name in m for m in self._maps)


class _AllWaiting(Mapping[str, Verdict]):
    """Every pending step of a part waits for the same thing (the finally part, for the main)."""

    def __init__(self, observed: _Index, verdict: Verdict):
        self._observed, self._verdict = observed, verdict

    def __getitem__(self, name: str) -> Verdict:
        if name not in self:
            raise KeyError(name)
        return self._verdict

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._observed if n in self._observed.with_phase(PENDING))

    def __len__(self) -> int:
        return self._observed.count(PENDING)

    def __contains__(self, name: object) -> bool:
        return name in self._observed.with_phase(PENDING)


class _Waiting(Mapping[str, Verdict]):
    """Why each pending step waits. The steps the pass looked at are listed; every other
    pending step waits for a prerequisite, and its verdict is worked out only when asked for,
    from the observations as they are then (the executors ask at once: a status write asks
    for all of them, a scheduling decision for none)."""

    def __init__(self, plan: Plan, observed: _Index, decided: dict[str, Verdict],
                 leaving: set[str]):
        self._plan, self._observed, self._decided, self._leaving = plan, observed, decided, leaving

    def _waits(self, name: object) -> bool:
        return name in self._decided or (
            name in self._observed.with_phase(PENDING) and name not in self._leaving)

    def __getitem__(self, name: str) -> Verdict:
        if name in self._decided:
            return self._decided[name]
        if not self._waits(name):
            raise KeyError(name)
        upstream = _first_unfinished(self._plan, self._observed, self._plan.prerequisites(name))
        return Verdict(WAITING_FOR_PREREQUISITES, f'waiting for "{upstream}"')

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._plan.step_by_name if self._waits(n))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return self._waits(name)


def _first_unfinished(plan: Plan, observed: Mapping[str, StepState], names: Iterable[str]) -> str | None:
    return next((p for p in names if not succeeded_for_scheduling(plan, p, observed[p])), None)


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
    state_of: _Index
    everything: Mapping[str, StepState]  # both parts: a finally step reads main steps (X2)
    failed: list[str]
    abort: Verdict | None
    workflow_failed: bool
    skip: dict[str, Verdict] = field(default_factory=dict)
    fail: dict[str, Verdict] = field(default_factory=dict)
    waiting: dict[str, Verdict] = field(default_factory=dict)
    ready: list[str] = field(default_factory=list)
    _bad_groups: set[int] = field(default_factory=set)

    def run(self) -> None:
        plan = self.plan
        # F1: once a step fails, only the rest of its group may still start.
        open_groups = {plan.group_of[f] for f in self.failed}
        stop_after_group = plan.spec.failure_policy == "StopAfterGroup" and bool(self.failed)
        pending = self.state_of.with_phase(PENDING)
        everything = self.abort is not None or stop_after_group  # a policy decides every pending step
        order = plan.topological_index
        work = [(order[n], n) for n in (pending if everything else self.state_of.candidates & pending)]
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
                verdict = Verdict(WORKFLOW_FAILED, f"not started: {_steps(self.failed, 10)} failed "
                                                   "(failurePolicy StopAfterGroup)")
            if verdict is None:
                upstream = self._waiting_on(name)
                if upstream is not None:
                    self.waiting[name] = Verdict(WAITING_FOR_PREREQUISITES, f'waiting for "{upstream}"')
                    continue
                verdict = self._data_verdict(name)
                if verdict is None:
                    ready.add(name)
                    continue
            if verdict.reason == CONDITION_ERROR:
                self.fail[name] = verdict
            else:
                self.skip[name] = verdict
            if self._outcome(name)[0]:
                self._bad_groups.add(plan.group_of[name])
            for after in self._affected_by(name):
                if after in pending and after not in seen:
                    heapq.heappush(work, (order[after], after))
        self.ready = sorted(ready, key=plan.index_of)

    def _data_verdict(self, name: str) -> Verdict | None:
        """W3 and W1 for a step whose prerequisites are met: an output it reads is missing
        (its producer did not succeed), or its condition is false or cannot be evaluated."""
        step = self.plan.step_by_name[name]
        condition = self.plan.conditions.get(name)
        reads = [(producer, output) for _, producer, output in step.output_sources]
        if condition is not None:
            reads += [(r.step, r.output or "") for r in condition.references if r.reads_outputs]
        for producer, output in reads:
            state = self.everything[producer]
            if state.phase != SUCCEEDED:
                what = f'output "{output}"' if output else "outputs"
                return Verdict(OUTPUT_UNAVAILABLE, f'step "{producer}" was {state.phase.lower()}'
                                                   f"{_why(state)}, so its {what} is unavailable")
        if condition is None:
            return None
        views = {ref: step_view(self.everything[ref]) for ref in condition.steps}
        workflow = {"name": self.plan.spec.name, "namespace": self.plan.spec.namespace or "",
                    "failed": self.workflow_failed}
        try:
            if condition.evaluate(views, workflow):
                return None
        except ConditionEvaluationError as exc:
            return Verdict(CONDITION_ERROR, f"when {condition.source!r} could not be evaluated: {exc}")
        return Verdict(CONDITION_FALSE, f"condition is false: {condition.source}")

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
            return self.skip[name].reason != CONDITION_FALSE, SKIPPED  # W3
        if name in self.fail:
            return not self.plan.step_by_name[name].continue_on_error, FAILED
        state = self.state_of[name]
        return _is_bad(self.plan, name, state), state.phase

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
        if not self.state_of.group_has_bad(group) and group not in self._bad_groups:
            return None
        return next((m for m in self.plan.groups[group] if self._outcome(m)[0]), None)

    def _waiting_on(self, name: str) -> str | None:
        """The first prerequisite that has not yet succeeded, if any."""
        return _first_unfinished(self.plan, self.state_of, self.plan.prerequisites(name))


def _why(state: StepState) -> str:
    return f" ({state.reason})" if state.reason else ""


def _workflow_phase(plan, state_of: _Index, outcome: _Pass, start, waiting_for, failed, abort,
                    suspended) -> tuple[str, str, str]:
    total = len(state_of)
    unfinished = total - state_of.count(*TERMINAL) - len(outcome.skip) - len(outcome.fail)
    running = state_of.count(RUNNING)
    if not unfinished:
        return _final_phase(plan, state_of, outcome, failed, abort)
    if suspended:
        return SUSPENDED, "Suspended", f"suspended; {running} step(s) still running"
    if abort is not None:
        return RUNNING, abort.reason, f"{abort.message}; stopping {running} running step(s)"
    if failed:
        return RUNNING, "StepsFailed", (f"{_steps(failed)} failed; finishing "
                                        f"{running + len(start)} step(s) already due")
    if not running and not start and not state_of.count(*TERMINAL):
        return PENDING, "WaitingForSlot", "waiting for a slot to start"
    # Slot waits are decided after the pass, so count them from the final waiting map.
    waiting = sum(1 for v in waiting_for.values() if v.reason == WAITING_FOR_SLOT)
    slot_note = f", {waiting} waiting for a slot" if waiting else ""
    # Running means observed running: a step decided to start may still fail to (its Job's name
    # taken, say), so it is counted apart rather than as running.
    start_note = f", {len(start)} starting" if start else ""
    return RUNNING, "Running", f"{running} of {total} step(s) running{start_note}{slot_note}"


def _final_phase(plan, state_of: _Index, outcome: _Pass, failed, abort) -> tuple[str, str, str]:
    """Every step is terminal: Succeeded unless something failed, was cancelled or was skipped
    for a reason other than a condition (W3), an output that made unavailable, or a skip of a
    prerequisite (such a chain starts at a failure, a cancel or a real skip, counted on their own)."""
    failed = sorted({*failed, *(n for n in outcome.fail if not plan.step_by_name[n].continue_on_error)},
                    key=plan.index_of)
    skips = [(n, state_of[n].reason) for n in state_of.with_phase(SKIPPED)]
    skips += [(n, v.reason) for n, v in outcome.skip.items()]
    cancelled = sorted(state_of.with_phase(CANCELLED), key=plan.index_of)
    tail = "".join([f"; {len(cancelled)} cancelled" if cancelled else "",
                    f"; {len(skips)} skipped" if skips else ""])
    if failed:
        return FAILED, "StepsFailed", f"{_steps(failed)} failed" + tail
    stopped = [state_of[n] for n in cancelled] + [state_of[n] for n, _ in skips]
    if (abort is not None and abort.reason == TIMEOUT) or any(s.reason == TIMEOUT for s in stopped):
        return FAILED, TIMEOUT, f"workflow timed out after {plan.spec.timeout_seconds}s" + tail
    if cancelled or any(reason not in (*DATA_SKIPS, PREREQUISITE_SKIPPED) for _, reason in skips):
        first = state_of[cancelled[0]] if cancelled else None
        reason = first.reason if first is not None and first.reason else "Cancelled"
        return FAILED, reason, tail[2:]
    tolerated = sorted(state_of.with_phase(FAILED), key=plan.index_of)
    note = f" ({_quoted(tolerated)} failed with continueOnError)" if tolerated else ""
    total = len(state_of)
    if skips:
        return SUCCEEDED, "Succeeded", (f"{total - len(skips)} of {total} step(s) succeeded, "
                                        f"{len(skips)} skipped by conditions{note}")
    return SUCCEEDED, "Succeeded", f"all {total} step(s) succeeded{note}"


MESSAGE_NAMES_BUDGET = 2000  # characters of step names in one message; the rest are counted


def _quoted(names: Iterable[str], limit: int | None = None) -> str:
    """Quoted names as a sentence lists them: "a", "a" and "b", "a", "b" and "c"; ``limit``
    where a list repeats per step. Every name is given (F1) unless they would take more than
    MESSAGE_NAMES_BUDGET characters: a status must stay far below etcd's object limit."""
    names = list(names)
    if limit is None:
        used, limit = 0, 0
        for name in names:
            used += len(name) + 4
            if used > MESSAGE_NAMES_BUDGET:
                break
            limit += 1
    shown = [f'"{n}"' for n in names[:limit]]
    hidden = len(names) - limit if limit is not None else 0
    if hidden > 0:
        shown.append(f"{hidden} more")
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _steps(names: list[str], limit: int | None = None) -> str:
    """'step "a"' or 'steps "a" and "b"'."""
    return ("step " if len(names) == 1 else "steps ") + _quoted(names, limit)


def skipped(state: StepState, verdict: Verdict, now: float) -> StepState:
    """A skip as both executors record it."""
    return replace(state, phase=SKIPPED, reason=verdict.reason, message=verdict.message, finished_at=now)


def failed_unstarted(state: StepState, verdict: Verdict, now: float) -> StepState:
    """A step the engine failed without running it (ConditionError), as both executors record it."""
    return replace(state, phase=FAILED, reason=verdict.reason, message=verdict.message, finished_at=now)


def apply_skips(states: Mapping[str, StepState], decision: Decision, now: float) -> dict[str, StepState]:
    """The states with the decision's skips and unstarted failures recorded (a new dict; the
    operator's way)."""
    updated = dict(states)
    for name, verdict in decision.skip.items():
        updated[name] = skipped(updated.get(name, _PENDING), verdict, now)
    for name, verdict in decision.fail.items():
        updated[name] = failed_unstarted(updated.get(name, _PENDING), verdict, now)
    return updated


class SlotQueue:
    """C2: an operator-wide cap on running steps, shared first come, first served.

    Each workflow reports the steps the engine wants to start. They queue in
    arrival order; a workflow may start only the ones among the first free
    slots, so a large workflow that arrived later cannot starve the others.
    Pure bookkeeping: the operator owns one and calls it under its own lock.
    """

    def __init__(self, limit: int | None):
        self.limit = limit
        self._queue: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._running: dict[str, int] = {}

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def grant(self, workflow: str, wanted: Iterable[str], running: int) -> int:
        """Record ``workflow``'s wanted steps and running count; return how many it may start."""
        wanted = list(wanted)
        self._running[workflow] = running
        keep = set(wanted)
        for key in [k for k in self._queue if k[0] == workflow and k[1] not in keep]:
            del self._queue[key]
        for name in wanted:
            self._queue.setdefault((workflow, name), None)
        if self.limit is None:
            return len(wanted)
        free = max(self.limit - self.running, 0)
        head = list(self._queue)[:free]
        return sum(1 for key in head if key[0] == workflow)

    def started(self, workflow: str, names: Iterable[str]) -> None:
        for name in names:
            self._queue.pop((workflow, name), None)
            self._running[workflow] = self._running.get(workflow, 0) + 1

    def forget(self, workflow: str) -> None:
        """Drop a finished or deleted workflow from the books."""
        self._running.pop(workflow, None)
        for key in [k for k in self._queue if k[0] == workflow]:
            del self._queue[key]

    def next_in_line(self) -> list[str]:
        """Workflows whose queued steps now fit in free slots: the operator wakes them."""
        if self.limit is None:
            return list(dict.fromkeys(w for w, _ in self._queue))
        free = max(self.limit - self.running, 0)
        return list(dict.fromkeys(w for w, _ in list(self._queue)[:free]))


class PoolQueue:
    """R2: the slots of StepPools, shared across workflows first come, first served, in turns.

    Workflows queue per pool in the order they first asked for a slot; a free slot goes to the
    workflow at the head, which then goes to the back if it wants more. So a workflow of 100
    steps that came first does not keep a later 1-step workflow waiting for 98 releases: it
    waits for at most as many releases as workflows are ahead of it. Each reconcile tells, per
    pool, which of its steps hold a slot (they run) and which want one, in document order.
    A grant costs O(the steps given + the pool's free slots), whatever the number of workflows.
    Pure bookkeeping, keyed by whatever the executor uses for pools and workflows; the
    operator calls it under a lock.
    """

    def __init__(self, limits: Mapping[Any, int] | None = None):
        self.limits: dict[Any, int] = dict(limits or {})  # pools that exist
        self._held: dict[Any, dict[Any, frozenset[str]]] = {}  # pool -> workflow -> steps
        self._in_use: dict[Any, int] = {}
        self._queue: dict[Any, OrderedDict[Any, tuple[str, ...]]] = {}  # pool -> workflow -> wanted

    def set_limit(self, pool: Any, limit: int | None) -> None:
        """A pool created, changed (None: deleted)."""
        if limit is None:
            self.limits.pop(pool, None)
        else:
            self.limits[pool] = limit

    def in_use(self, pool: Any) -> int:
        return self._in_use.get(pool, 0)

    def free(self, pool: Any) -> int:
        return max(self.limits.get(pool, 0) - self.in_use(pool), 0)

    def grant(self, pool: Any, workflow: Any, wanted: Iterable[str], holding: Iterable[str]) -> int:
        """Record what ``workflow`` holds of and wants from ``pool``; how many it may start now."""
        self._hold(pool, workflow, frozenset(holding))
        wanted = tuple(wanted)
        queue = self._queue.setdefault(pool, OrderedDict())
        if not wanted:
            queue.pop(workflow, None)
            return 0
        queue[workflow] = wanted  # a newcomer joins at the back; the others keep their turn
        return self._share(pool, workflow) if pool in self.limits else 0

    def _share(self, pool: Any, workflow: Any) -> int:
        """The free slots dealt one at a time to the queue's workflows in turn: ``workflow``'s part."""
        free, mine = self.free(pool), 0
        turns = [(owner, len(wanted)) for owner, wanted in islice(self._queue[pool].items(), free)]
        while free > 0 and turns:
            still = []
            for owner, want in turns:
                if free == 0:
                    break
                free -= 1
                if owner == workflow:
                    mine += 1
                if want > 1:
                    still.append((owner, want - 1))
            turns = still
        return mine

    def started(self, pool: Any, workflow: Any, names: Iterable[str]) -> None:
        """Steps took slots: they hold them, and the workflow's turn goes to the back."""
        names = frozenset(names)
        if not names:
            return
        queue = self._queue.setdefault(pool, OrderedDict())
        left = tuple(n for n in queue.pop(workflow, ()) if n not in names)
        if left:
            queue[workflow] = left
        self._hold(pool, workflow, self._held.get(pool, {}).get(workflow, frozenset()) | names)

    def forget(self, workflow: Any, pools: Iterable[Any]) -> None:
        """A finished or deleted workflow holds and wants nothing any more."""
        for pool in pools:
            self.grant(pool, workflow, (), ())

    def next_in_line(self, pool: Any) -> list[Any]:
        """Workflows whose turn comes with the pool's free slots: the executor wakes them."""
        return list(islice(self._queue.get(pool, {}), self.free(pool)))

    def holders(self, pool: Any) -> list[tuple[Any, str]]:
        return sorted((w, n) for w, names in self._held.get(pool, {}).items() for n in names)

    def waiting(self, pool: Any) -> list[tuple[Any, str]]:
        """Waiting steps, the workflows in their turn's order."""
        return [(w, n) for w, wanted in self._queue.get(pool, {}).items() for n in wanted]

    def _hold(self, pool: Any, workflow: Any, names: frozenset[str]) -> None:
        held = self._held.setdefault(pool, {})
        self._in_use[pool] = self.in_use(pool) - len(held.get(workflow, ())) + len(names)
        if names:
            held[workflow] = names
        else:
            held.pop(workflow, None)
