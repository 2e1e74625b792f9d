"""StepPools (R2) on the real control plane: a mutex across workflows, a pool created after the
workflow that needs it, and the pool's live status as `kubectl get steppools` shows it."""

from __future__ import annotations

from kube.realcluster import step, wait_for, workflow
from operator_harness import max_overlap
from stepflow.status import parse_time


def pool(name: str, limit: int) -> dict:
    return {"apiVersion": "stepflow.dev/v1alpha1", "kind": "StepPool", "metadata": {"name": name},
            "spec": {"limit": limit}}


def span(status: dict, name: str) -> tuple[float, float]:
    entry = status["steps"][name]
    return parse_time(entry["startedAt"]), parse_time(entry["finishedAt"])


def pod_span(kube, job: str) -> tuple[float, float]:
    """When the step's pod ran, as the pod records it: the real record, not stepflow's. (Not the
    Job's completionTime: the Job controller sets it about a second after the pod ended, and the
    step ends with its pod.)"""
    def ended() -> tuple[float, float] | None:
        for pod in kube.pods(job):
            for container in (pod.get("status") or {}).get("containerStatuses") or ():
                finished = ((container.get("state") or {}).get("terminated") or {}).get("finishedAt")
                if finished:
                    return parse_time(pod["metadata"]["creationTimestamp"]), parse_time(finished)
        return None

    return wait_for(ended, message=f"the pod of {job} never ended")


def test_two_workflows_contending_for_a_mutex_pool_never_overlap(kube, operator):
    kube.create(pool("prod-deploys", 1))
    for name in ("first", "second"):
        kube.create(workflow(name, [step("deploy", "1500ms", pool="prod-deploys"),
                                    step("check", "200ms", parallel=True)]))
    # While one deploys, the other's deploy waits for the pool, saying so.
    waiting = wait_for(lambda: [w for w in ("first", "second")
                                if (kube.status(w).get("steps") or {}).get("deploy", {}).get("reason")
                                == "WaitingForPool"], message="no deploy waited for the pool")
    assert "prod-deploys" in kube.status(waiting[0])["steps"]["deploy"]["message"]
    statuses = {name: kube.wait_phase(name, timeout=90) for name in ("first", "second")}
    assert all(s["phase"] == "Succeeded" for s in statuses.values()), statuses
    deploys = [span(statuses[n], "deploy") for n in ("first", "second")]
    assert max_overlap(deploys) == 1
    pods = [pod_span(kube, f"{n}-1-deploy") for n in ("first", "second")]
    assert max(p[0] for p in pods) >= min(p[1] for p in pods)  # the second began after the first ended
    assert kube.get("jobs", "first-1-deploy")["metadata"]["labels"]["stepflow.dev/pool"] == "prod-deploys"


def test_a_pool_created_after_the_workflow_lets_the_step_start(kube, operator):
    kube.create(workflow("early", [step("deploy", "200ms", pool="late-pool")]))
    wait_for(lambda: kube.status("early").get("steps", {}).get("deploy", {}).get("reason") == "PoolNotFound",
             message="the step never waited as PoolNotFound")
    assert kube.status("early")["phase"] in ("Pending", "Running")
    assert not kube.jobs("early")
    events = wait_for(lambda: [e for e in kube.events("early") if e["reason"] == "PoolNotFound"],
                      message="no PoolNotFound Event")
    assert events[0]["type"] == "Warning" and '"late-pool"' in events[0]["message"]
    kube.create(pool("late-pool", 1))
    status = kube.wait_phase("early", timeout=60)
    assert status["phase"] == "Succeeded", status.get("message")


def test_kubectl_get_steppools_shows_the_live_counts(kube, operator):
    kube.create(pool("shared", 1))
    kube.create(workflow("holder", [step("a", hold=True, pool="shared")]))
    # The waiter comes once the holder holds the slot: were both to find the pool missing at
    # first (its watch event can come after theirs), either could get it when it appears.
    wait_for(lambda: kube.step_phase("holder", "a") == "Running", message="the holder never ran")
    kube.create(workflow("waiter", [step("b", "200ms", pool="shared")]))

    def columns() -> list[str]:
        return kube.kubectl("get", "steppools", "shared", "--no-headers").split()

    wait_for(lambda: columns()[2:4] == ["1", "1"], message=f"IN-USE 1, WAITING 1 never showed: {columns()}")
    header = kube.kubectl("get", "steppools").splitlines()[0].split()
    assert header[:4] == ["NAME", "LIMIT", "IN-USE", "WAITING"]
    assert columns()[:4] == ["shared", "1", "1", "1"]
    status = kube.get("steppools", "shared")["status"]
    assert status["holders"] == ["holder/a"] and status["waitingSteps"] == ["waiter/b"]
    kube.release("holder-1-a")
    assert kube.wait_phase("waiter", timeout=60)["phase"] == "Succeeded"
    wait_for(lambda: columns()[2:4] == ["0", "0"], message=f"the pool never emptied: {columns()}")
