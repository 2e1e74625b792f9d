"""The measuring side of benchmarks/peers.py: each variant's controller on the shared control
plane, the scenarios, and what the API server's audit log says about them.

Times come from the audit log, in microseconds, so that no client's watch delay enters them:
a child's creation is the ``requestReceivedTimestamp`` of the controller's ``create`` (a Job for
stepflow, a pod for Argo, a TaskRun for Tekton); a pod's end is the ``stageTimestamp`` of kwok's
last write to its status (tests/kube/peers.py logs those). Each chain runs in a namespace of its
own, so that its children and pods pair up by order alone: step i's pod ended -> step i+1's
child created. The same events give each pod's create, binding and Running, from which
benchmarks/peer_phases.py cuts a step into phases.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kube.controlplane import ControlPlane
from kube.peers import PeerController
from kube.realcluster import Kube, wait_for
from kube_session import cpu_seconds, memory_mib
from operator_harness import OperatorProcess
from stepflow.status import parse_time

ROOT = Path(__file__).resolve().parents[1]
WRITE_VERBS = ("create", "update", "patch", "delete")
KWOK_USER = "stepflow-test-admin"  # kwok logs in with the tier's admin certificate


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)]


class AuditLog:
    """The audit log read from where the last read stopped: the file grows to hundreds of
    thousands of lines over a run."""

    def __init__(self, plane: ControlPlane):
        self.plane, self.offset = plane, 0

    def since_last(self) -> list[dict[str, Any]]:
        time.sleep(1.5)  # written in batches of up to a second
        if not self.plane.audit_log.exists():
            return []
        with self.plane.audit_log.open("rb") as file:
            if file.seek(0, os.SEEK_END) < self.offset:
                raise RuntimeError("the API server rotated its audit log: events were lost")
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


class Window:
    """One scenario's audit events: the controller's children and writes, and what became of
    each pod (created, bound by the scheduler, Running and ended by kwok), for benchmarks/peer_phases.py.

    ``pods[ns]`` maps a pod's name to the times of its milestones; a pod created from
    ``generateName`` (the Job controller's) has no name in its create's audit event, so that
    create is kept under its ``generateName`` (``<job>-``, never a pod's name). A request that
    failed counts as a write, and as nothing else."""

    def __init__(self, events: Iterable[dict[str, Any]], user: str, child: str, namespaces: set[str]):
        self.child = child
        self.children: dict[str, list[tuple[float, str]]] = defaultdict(list)  # (created, name)
        self.pods: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        self.writes: Counter[str] = Counter()
        for e in events:
            ref = e.get("objectRef") or {}
            ns = ref.get("namespace")
            if ns not in namespaces or e.get("stage") != "ResponseComplete":
                continue
            who, verb, sub = e.get("user", {}).get("username"), e["verb"], ref.get("subresource")
            if who == user and verb in WRITE_VERBS:  # a write that failed still cost a request
                self.writes[f"{verb} {ref.get('resource')}" + (f"/{sub}" if sub else "")] += 1
            if (e.get("responseStatus") or {}).get("code", 200) >= 300:
                continue
            if who == user and verb == "create" and ref.get("resource") == child and not sub:
                self.children[ns].append((parse_time(e["requestReceivedTimestamp"]), ref.get("name") or ""))
            if ref.get("resource") == "pods":
                self._pod(e, self.pods[ns], who, verb, sub)
        for series in self.children.values():
            series.sort()
        self.creates = {ns: [t for t, _ in series] for ns, series in self.children.items()}
        self.ends: dict[str, list[float]] = defaultdict(list)
        for ns, pods in self.pods.items():
            self.ends[ns] = sorted(p["ended"] for p in pods.values() if "ended" in p)

    @staticmethod
    def _pod(e: dict[str, Any], pods: dict[str, dict[str, float]], who: str, verb: str,
             sub: str | None) -> None:
        """A controller's create counts from when the API server received it (as a child's),
        kwok's writes of a pod's status from when they were stored: its first is the pod
        Running, its last the pod ended."""
        received, stored = parse_time(e["requestReceivedTimestamp"]), parse_time(e["stageTimestamp"])
        name = e["objectRef"].get("name")
        if verb == "create" and not sub:
            name = name or ((e.get("requestObject") or {}).get("metadata") or {}).get("generateName")
            if name:
                pod = pods[name]
                pod["created"] = min(pod.get("created", received), received)
        elif verb == "create" and sub == "binding":
            pod = pods[name]
            pod["bound"] = min(pod.get("bound", received), received)
        elif who == KWOK_USER and sub == "status" and verb in ("patch", "update"):
            pod = pods[name]
            pod["running"] = min(pod.get("running", stored), stored)
            pod["ended"] = max(pod.get("ended", stored), stored)
            pod["status_writes"] = pod.get("status_writes", 0) + 1

    def reactions_ms(self) -> list[float]:
        """Per chain namespace: step i's pod ended -> step i+1's child created."""
        return [(c - e) * 1000 for ns in self.creates
                for e, c in zip(self.ends[ns], self.creates[ns][1:], strict=False)]

    def span(self) -> float:
        """First child created -> last pod ended, over every namespace."""
        if not any(self.creates.values()) or not any(self.ends.values()):
            raise RuntimeError("the audit log shows no child created or no pod ended")
        first = min(t for s in self.creates.values() for t in s)
        return max(t for s in self.ends.values() for t in s) - first

    def pods_ended(self) -> int:
        return sum(len(s) for s in self.ends.values())


class Controller:
    """One variant's controller: started once, every scenario run against it, then stopped."""

    def __init__(self, plane: ControlPlane, label: str, user: str, start: Callable[[], Any],
                 stop: Callable[[], None], pid: Callable[[], int], alive: Callable[[], bool],
                 log: Callable[[], str]):
        self.plane, self.label, self.user = plane, label, user
        self._start, self._stop, self.pid, self.alive, self.log = start, stop, pid, alive, log

    def start(self) -> Controller:
        self._start()
        return self

    def stop(self) -> None:
        self._stop()

    def cpu(self) -> float:
        return cpu_seconds(self.pid())


def stepflow_controller(plane: ControlPlane, credentials: Path, account: str, label: str,
                        stock: bool) -> Controller:
    """The operator of this checkout, as benchmarks/kube_session.py runs it."""
    env = {"PYTHONPATH": str(ROOT / "operator"), **({"STEPFLOW_KOPF_STOCK_SETTINGS": "1"} if stock else {})}
    holder: dict[str, OperatorProcess] = {}

    def start() -> None:
        holder["p"] = OperatorProcess(credentials, plane.workdir / f"operator-{account}.log", env=env).start()
        time.sleep(3.0)  # kopf connects and lists before the clock starts

    def alive() -> bool:
        return holder["p"].process is not None and holder["p"].process.poll() is None

    return Controller(plane, label, f"system:serviceaccount:stepflow-system:{account}", start,
                      lambda: holder["p"].stop(), lambda: holder["p"].process.pid, alive,
                      lambda: "\n".join(holder["p"].log().splitlines()[-40:]))


def peer_controller(peer: PeerController, label: str, tuned: bool) -> Controller:
    def start() -> None:
        peer.start(tuned)
        time.sleep(3.0)

    return Controller(peer.plane, label, peer.user, start, peer.stop, lambda: peer.process.pid,
                      peer.alive, peer.log)


class Scenarios:
    """The scenarios of benchmarks/peers.py for one controller and its way of writing workflows."""

    counter = 0

    def __init__(self, plane: ControlPlane, controller: Controller, shapes: Any, audit: AuditLog):
        self.plane, self.controller, self.shapes, self.audit = plane, controller, shapes, audit
        self.kube = Kube(plane, "default")

    # --- namespaces and objects -----------------------------------------------------------------

    def namespaces(self, count: int) -> list[str]:
        names = []
        for _ in range(count):
            Scenarios.counter += 1
            name = f"peers-{os.getpid()}-{Scenarios.counter}"
            self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            names.append(name)
        for name in names:
            wait_for(lambda n=name: self.kube.get("serviceaccounts", "default", namespace=n), timeout=60)
        return names

    def drop(self, namespaces: list[str]) -> None:
        """Delete and wait until gone: their deletion must not load the next scenario."""
        for ns in namespaces:
            self.kube.delete("namespaces", ns)
        for ns in namespaces:
            wait_for(lambda n=ns: self.kube.get("namespaces", n) is None, timeout=900, interval=1.0,
                     message=f"namespace {ns} deleted")

    def path(self, namespace: str, name: str = "") -> str:
        s = self.shapes
        return f"/apis/{s.group}/{s.version}/namespaces/{namespace}/{s.plural}" + (f"/{name}" if name else "")

    def submit(self, docs: list[tuple[str, dict[str, Any]]]) -> float:
        """Create every (namespace, object), four at a time; the time the first was sent."""
        started = time.time()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda d: self.kube.api.request("POST", self.path(d[0]), body=d[1]), docs))
        return started

    def wait(self, namespaces: list[str], count: int, timeout: float) -> dict[str, int]:
        """Until ``count`` workflows have finished; their outcomes counted."""
        interval = 0.25 if count < 20 else 1.0

        def done() -> Counter[str] | None:
            if not self.controller.alive():
                raise RuntimeError(f"{self.controller.label} exited:\n{self.controller.log()}")
            outcomes: Counter[str] = Counter()
            for ns in namespaces:
                for obj in self.kube.api.request("GET", self.path(ns))["items"]:
                    outcomes[self.shapes.finished(obj) or "running"] += 1
            return outcomes if sum(outcomes.values()) - outcomes["running"] >= count else None

        outcomes = wait_for(done, timeout=timeout, interval=interval,
                            message=f"{self.controller.label}: not all finished within {timeout} s")
        return dict(outcomes)

    def window(self, namespaces: list[str]) -> Window:
        return Window(self.audit.since_last(), self.controller.user, self.shapes.child, set(namespaces))

    # --- scenarios ------------------------------------------------------------------------------

    def chains(self, count: int, length: int) -> dict[str, Any]:
        namespaces = self.namespaces(count)
        self.audit.since_last()
        self.submit([(ns, self.shapes.chain("chain", length)) for ns in namespaces])
        outcomes = self.wait(namespaces, count, timeout=60 + length * count * 15)
        window = self.window(namespaces)
        reactions = window.reactions_ms()
        self.drop(namespaces)
        import peer_phases  # it reads a Window: imported here, not at the top, where it would be circular

        return {"outcomes": outcomes, "reactions": len(reactions),
                "reaction_p50_ms": percentile(reactions, 50), "reaction_p99_ms": percentile(reactions, 99),
                "steps_per_second": count * length / window.span(), "pods_ended": window.pods_ended(),
                "phases": peer_phases.phases(window)}

    def throughput(self, workflows: int) -> dict[str, Any]:
        [ns] = self.namespaces(1)
        self.audit.since_last()
        kcm = self.plane.processes["kube-controller-manager"].pid
        before, kcm_before = self.controller.cpu(), cpu_seconds(kcm)
        self.submit([(ns, self.shapes.five(f"wf-{i:04d}")) for i in range(workflows)])
        outcomes = self.wait([ns], workflows, timeout=1800)
        cpu, kcm_cpu = self.controller.cpu() - before, cpu_seconds(kcm) - kcm_before
        window = self.window([ns])
        self.drop([ns])
        steps = workflows * 5
        return {"outcomes": outcomes, "steps": steps, "steps_per_second": steps / window.span(),
                "cpu_ms_per_step": cpu * 1000 / steps, "kcm_cpu_ms_per_step": kcm_cpu * 1000 / steps,
                "writes_per_step": sum(window.writes.values()) / steps,
                "writes": {k: v / steps for k, v in sorted(window.writes.items())}}

    def fan_out(self, copies: int, cap: int) -> dict[str, Any]:
        [ns] = self.namespaces(1)
        self.audit.since_last()
        apiserver = self.plane.processes["kube-apiserver"].pid
        before, api_before = self.controller.cpu(), cpu_seconds(apiserver)
        started = self.submit([(ns, self.shapes.fan_out("fan", copies, cap))])
        outcomes = self.wait([ns], 1, timeout=3600)
        wall = time.time() - started
        cpu, api_cpu = self.controller.cpu() - before, cpu_seconds(apiserver) - api_before
        stored = self.kube.api.request("GET", self.path(ns, "fan"))
        window = self.window([ns])
        self.drop([ns])
        return {"outcomes": outcomes, "copies": copies, "cap": cap, "wall_seconds": wall,
                "controller_cpu_seconds": cpu, "apiserver_cpu_seconds": api_cpu,
                "largest_object_kib": len(json.dumps(stored, separators=(",", ":"))) / 1024,
                "pods_ended": window.pods_ended()}

    def memory(self, workflows: int) -> dict[str, Any]:
        [ns] = self.namespaces(1)
        self.submit([(ns, self.shapes.one(f"one-{i:04d}")) for i in range(workflows)])
        outcomes = self.wait([ns], workflows, timeout=3600)
        time.sleep(3.0)
        rss = memory_mib(self.controller.pid(), "VmRSS")
        self.audit.since_last()
        self.drop([ns])
        return {"outcomes": outcomes, "workflows": workflows, "rss_mib": rss}
