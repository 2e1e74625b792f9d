"""Build the Workflow ``status`` document, the one both executors publish.

The operator writes exactly this to the status subresource, and ``stepflow
run --report`` writes it to a file, so tools that read one read the other.
Empty fields are left out: a 1,000-step status must stay well under the
256 KiB target, and a merge patch then carries only what changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from stepflow.engine import (
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
    WAITING_FOR_ADMISSION,
    Decision,
    StepState,
    whole_state,
)
from stepflow.plan import Plan

RUNNING_PHASES = (PENDING, RUNNING, SUSPENDED)
CONDITION_MESSAGE_LIMIT = 1024  # repeated in five conditions; see conditions()


# Every reconcile re-reads and re-writes each step's two timestamps; the same values recur,
# so both conversions are memoised (a 1,000-step status spends most of its time here otherwise).
@lru_cache(maxsize=65536)
def rfc3339(ts: float | None) -> str | None:
    """Seconds since the epoch as RFC 3339 UTC with milliseconds (``...T21:30:55.123Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=65536)
def parse_time(text: str | None) -> float | None:
    """The inverse of :func:`rfc3339`; accepts Kubernetes' second-precision times too."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def human_duration(seconds: float | None) -> str:
    """Like kubectl's ages: 850ms, 42s, 3m05s, 2h01m."""
    if seconds is None or seconds != seconds:  # unknown, or NaN
        return ""
    seconds = max(seconds, 0.0)  # a clock step between two hosts must not show "-300ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def group_label(entry: Mapping[str, Any]) -> str:
    """A step's group as the CLI shows it, 1-based; finally steps say so (X4)."""
    label = str(entry.get("group", 0) + 1)
    return f"{label} finally" if entry.get("finally") else label


def phase_label(entry: Mapping[str, Any]) -> str:
    """The phase, with a condition's skip told apart from a skip after a failure (W3)."""
    phase = entry.get("phase", PENDING)
    if phase == "Skipped" and entry.get("reason") in ("ConditionFalse", "OutputUnavailable"):
        return "Skipped (condition)" if entry["reason"] == "ConditionFalse" else "Skipped (no output)"
    return phase


def outputs_text(entry: Mapping[str, Any], limit: int = 40) -> str:
    """``name=value`` pairs of a step's outputs, each value on one line and cut at ``limit``."""
    pairs = []
    for name, value in (entry.get("outputs") or {}).items():
        value = value.replace("\n", "⏎")
        pairs.append(f"{name}={value if len(value) <= limit else value[:limit - 1] + '…'}")
    return ", ".join(pairs)


def step_entry(plan: Plan, name: str, state: StepState, waiting: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``status.steps``; a Pending step shows why it waits."""
    step = plan.step_by_name[name]
    reason, message = state.reason, state.message
    if state.phase == PENDING and name in waiting:
        reason, message = waiting[name].reason, waiting[name].message
    entry: dict[str, Any] = {
        "group": plan.group_of[name],
        "index": step.index,
        "type": step.type,
        "phase": PENDING if _awaits_admission(state) else state.phase,
        "reason": reason,
        "message": message,
        "jobName": state.job_name,
        "startedAt": rfc3339(state.started_at),
        "finishedAt": rfc3339(state.finished_at),
        "attempts": state.attempts,
        "exitCode": state.exit_code,
        "terminationMessage": state.termination_message,
        "continuedOnError": state.phase == FAILED and step.continue_on_error,
        "outputs": dict(state.outputs) if state.outputs else None,
        "finally": step.final,
        "matrixOf": step.matrix_of,  # M2: a copy names its step, and has its values
        "matrix": dict(step.matrix_values) if step.matrix_of is not None else None,
    }
    return {k: v for k, v in entry.items() if v not in ("", None, False) or k in ("group", "index")}


def whole_entry(plan: Plan, name: str, states: Mapping[str, StepState]) -> dict[str, Any]:
    """M2: a matrix step's own entry, beside its copies': the phase of the whole (M3) and how
    many copies it has."""
    copies = plan.matrices[name][1]
    first = plan.step_by_name[copies[0]]
    state = whole_state(plan, name, states)
    entry = step_entry(plan, copies[0], state, {})  # its type is its copies': left out when empty
    entry.update(index=first.index, copies=len(copies))
    # Its outputs are its copies', already in status: kept once (a consumer reads them as M5 says).
    # continuedOnError stays: the whole failed, and each copy's failure was let through (M3).
    for key in ("jobName", "attempts", "matrixOf", "matrix", "exitCode", "terminationMessage", "outputs"):
        entry.pop(key, None)
    return entry


def expansions_from_status(status: Mapping[str, Any] | None) -> dict[str, list[dict[str, str]]]:
    """M4: the expansions a run recorded, read back from its copies' entries (copy order)."""
    found: dict[str, dict[int, dict[str, str]]] = {}
    for name, entry in ((status or {}).get("steps") or {}).items():
        whole = entry.get("matrixOf")
        if isinstance(whole, str) and name.startswith(f"{whole}-") and name[len(whole) + 1:].isdigit():
            found.setdefault(whole, {})[int(name[len(whole) + 1:])] = dict(entry.get("matrix") or {})
    return {whole: [values[i] for i in sorted(values)] for whole, values in found.items()
            if sorted(values) == list(range(len(values)))}


def _awaits_admission(state: StepState) -> bool:
    """R3: its Job waits for Kueue. It counts as running for the caps, but has not started, so
    users (and kubectl wait) see Pending."""
    return state.phase == RUNNING and state.reason == WAITING_FOR_ADMISSION


def step_state(entry: Mapping[str, Any]) -> StepState:
    """Read a ``status.steps`` entry back; the operator resumes from this after a restart."""
    phase = entry.get("phase", PENDING)
    if phase == PENDING and entry.get("reason") == WAITING_FOR_ADMISSION and entry.get("jobName"):
        phase = RUNNING  # what the engine saw: a step whose Job exists (see _awaits_admission)
    return StepState(
        phase=phase,
        reason=entry.get("reason", ""),
        message=entry.get("message", ""),
        started_at=parse_time(entry.get("startedAt")),
        finished_at=parse_time(entry.get("finishedAt")),
        attempts=entry.get("attempts", 0),
        exit_code=entry.get("exitCode"),
        termination_message=entry.get("terminationMessage", ""),
        job_name=entry.get("jobName", ""),
        outputs=dict(entry.get("outputs") or {}),
    )


def states_from_status(status: Mapping[str, Any] | None) -> dict[str, StepState]:
    return {name: step_state(entry) for name, entry in ((status or {}).get("steps") or {}).items()}


def build_status(
    plan: Plan,
    states: Mapping[str, StepState],
    decision: Decision,
    *,
    now: float,
    started_at: float | None,
    finished_at: float | None = None,
    run_generation: int | None = None,
    observed_generation: int | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole status document for the current decision."""
    end = finished_at if decision.finished else None
    if decision.finished and end is None:
        end = _last_end(states, started_at, now)
    status: dict[str, Any] = {
        "phase": decision.phase,
        "reason": decision.reason,
        "message": decision.message,
        "progress": decision.progress,
        "startedAt": rfc3339(started_at),
        "finishedAt": rfc3339(end),
        "duration": human_duration((end or now) - started_at) if started_at is not None else "",
        "observedGeneration": observed_generation,
        "runGeneration": run_generation,
        "groups": [list(g) for g in plan.groups],
        "steps": {s.name: step_entry(plan, s.name, states.get(s.name, StepState()), decision.waiting)
                  for s in plan.steps},
    }
    status["steps"].update({name: whole_entry(plan, name, states) for name in plan.matrices})
    status["conditions"] = conditions(decision.phase, decision.reason, decision.message,
                                      observed_generation, now, (previous or {}).get("conditions"))
    _keep_within_budget(status)
    return {k: v for k, v in status.items() if v not in ("", None)}


def _last_end(states: Mapping[str, StepState], started_at: float | None, now: float) -> float:
    """A run ends when its last step did. That is ``now`` when the end is seen as it happens,
    but earlier when an operator restart catches up on steps that ended while it was down."""
    end = max((s.finished_at for s in states.values() if s.finished_at is not None), default=now)
    return end if started_at is None else max(end, started_at)


def conditions(
    phase: str,
    reason: str,
    message: str,
    generation: int | None,
    now: float,
    previous: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """kstatus conditions (Ready, Reconciling, Stalled) plus Job-style Complete and Failed.

    ``lastTransitionTime`` is kept from ``previous`` while a condition's status
    holds, as Kubernetes conventions require.
    """
    in_progress = phase in RUNNING_PHASES
    truth = {
        "Ready": phase == SUCCEEDED,
        "Reconciling": in_progress,
        "Stalled": phase == FAILED,
        "Complete": phase == SUCCEEDED,
        "Failed": phase == FAILED,
    }
    before = {c.get("type"): c for c in previous or ()}
    if len(message) > CONDITION_MESSAGE_LIMIT:  # status.message keeps the whole text
        message = message[: CONDITION_MESSAGE_LIMIT - 1] + "…"
    result = []
    for kind, value in truth.items():
        status = "True" if value else "False"
        old = before.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else rfc3339(now)
        condition = {
            "type": kind,
            "status": status,
            "reason": reason or phase,
            "message": message,
            "lastTransitionTime": since,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        result.append(condition)
    return result


def invalid_status(
    errors: Sequence[Any],
    *,
    now: float,
    observed_generation: int | None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Status of a Workflow whose spec is invalid: Failed/InvalidSpec with every error listed."""
    message = "invalid spec: " + "; ".join(str(e) for e in errors)
    status: dict[str, Any] = {
        "phase": FAILED,
        "reason": "InvalidSpec",
        "message": message,
        "errors": [str(e) for e in errors],
        "observedGeneration": observed_generation,
        "runGeneration": observed_generation,
        "finishedAt": rfc3339(now),
        "conditions": conditions(FAILED, "InvalidSpec", message, observed_generation, now,
                                 (previous or {}).get("conditions")),
    }
    return {k: v for k, v in status.items() if v is not None}


def waiting_for_types_status(message: str, *, now: float, observed_generation: int | None,
                             previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """T4: a new run waits, Pending, reason StepTypeNotFound; no run has started, so no
    runGeneration nor specHash: the run begins, from scratch, once its types exist."""
    return {"phase": PENDING, "reason": "StepTypeNotFound", "message": message,
            "observedGeneration": observed_generation,
            "conditions": conditions(PENDING, "StepTypeNotFound", message, observed_generation, now,
                                     (previous or {}).get("conditions"))}


MAX_STATUS_BYTES = 512 * 1024  # etcd refuses objects over 1.5 MiB; a status stays far below


def _keep_within_budget(status: dict[str, Any]) -> None:
    """Termination messages go first: each step keeps the tail it can have within the budget;
    then finished steps' messages (their reason stays). ``status.trimmed`` says what was cut.
    Workflows that fit, nearly all, pay one cheap estimate."""
    steps = status["steps"]
    messages = [e["terminationMessage"] for e in steps.values() if e.get("terminationMessage")]
    if 300 * len(steps) + sum(map(len, messages)) <= MAX_STATUS_BYTES // 2:
        return
    size = _size(status)
    notes = []
    if size > MAX_STATUS_BYTES and messages:
        spare = MAX_STATUS_BYTES - (size - sum(len(json.dumps(m)) for m in messages))
        keep = max(spare // len(messages) - 8, 64)
        cut = 0
        for entry in steps.values():
            text = entry.get("terminationMessage")
            if text and len(text) > keep:
                entry["terminationMessage"] = "…" + text[-keep:]
                cut += 1
        if cut:
            notes.append(f"terminationMessage of {cut} step(s) cut to the last {keep} characters")
        size = _size(status)
    if size > MAX_STATUS_BYTES:
        finished = [e for e in steps.values() if e.get("message") and e.get("finishedAt")]
        for entry in finished:
            del entry["message"]
        notes.append(f"the message of {len(finished)} finished step(s) left out (their reason stays)")
    if notes:
        status["trimmed"] = "; ".join(notes) + f", to keep the status under {MAX_STATUS_BYTES // 1024} KiB"


def _size(status: Mapping[str, Any]) -> int:
    return len(json.dumps(status, separators=(",", ":")))
