"""Checks of one published Workflow status that a user would find contradictory, used by the
real control plane tier: they run on every status write a test sees."""

from __future__ import annotations

from stepflow.matrix import expand
from stepflow.operator.jobs import spec_hash
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError
from stepflow.status import expansions_from_status, parse_time

TERMINAL_STEP = {"Succeeded", "Failed", "Skipped", "Cancelled"}


def status_inconsistencies(status: dict) -> list[str]:
    """What a user reading this one status document would find contradictory."""
    steps = {n: e for n, e in (status.get("steps") or {}).items() if "copies" not in e}  # M2: not wholes
    if not steps:
        return []
    problems = []
    unfinished = sorted(name for name, step in steps.items() if step.get("phase") not in TERMINAL_STEP)
    if status.get("phase") in ("Succeeded", "Failed") and unfinished:
        problems.append(f"workflow {status['phase']} while steps {unfinished} are not finished")
    done = len(steps) - len(unfinished)
    if status.get("progress") not in (None, f"{done}/{len(steps)}"):
        problems.append(f"progress {status['progress']} but {done} of {len(steps)} steps finished")
    return problems


def order_violations(workflow: dict) -> list[str]:
    """Steps of this run recorded as starting before the run did, or before a prerequisite
    ended (D1, G5)."""
    status = workflow.get("status") or {}
    steps = status.get("steps") or {}
    if not steps or status.get("specHash") != spec_hash(workflow.get("spec") or {}):
        return []  # the status still describes an earlier spec's run
    try:
        plan = expand(compile_workflow(workflow), expansions_from_status(status))  # M4
    except SpecError:
        return []
    run_start = parse_time(status.get("startedAt")) or 0.0
    this_run = f"{workflow['metadata']['name']}-{status.get('runGeneration')}-"
    problems = []
    for name, entry in steps.items():
        started = parse_time(entry.get("startedAt"))
        if started is None or not entry.get("jobName", "").startswith(this_run):
            continue  # not started, or kept from an earlier run by rerun --failed
        if started < run_start:
            problems.append(f'step "{name}" started at {entry["startedAt"]}, before its run '
                            f'({status.get("startedAt")})')
        for before in plan.prerequisites(name):
            ended = parse_time((steps.get(before) or {}).get("finishedAt"))
            if ended is None or ended > started:
                problems.append(f'step "{name}" started at {entry["startedAt"]} before "{before}" '
                                f'ended ({(steps.get(before) or {}).get("finishedAt")})')
    return problems
