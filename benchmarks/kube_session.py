"""The real control plane side of benchmarks/operator_latency.py.

One control plane (tests/kube/) serves every scenario; each scenario gets a namespace of its
own and a fresh ``stepflow operator`` logged in as deploy/'s ServiceAccount. A watch on the
namespace's Jobs and pods records when each change reaches a client, the way it reaches the
operator; the API server's audit log counts the operator's requests.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from kube.controlplane import ControlPlane
from kube.realcluster import Kube, wait_for, watch_events
from operator_harness import OperatorProcess
from stepflow.operator.child_watches import POD_PHASES_WATCHED
from stepflow.status import parse_time


def _true(obj: dict[str, Any], *kinds: str) -> bool:
    return any(
        c.get("type") in kinds and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or ()
    )


def memory_mib(pid: int, field: str) -> float:
    """A process's memory from /proc: VmHWM is the peak resident set, VmRSS the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watcher:
    """First arrival time of each moment the benchmark cares about, per Job."""

    def __init__(self, kube: Kube, resource: str, field_selector: str = ""):
        self.kube, self.resource, self.field_selector = kube, resource, field_selector
        self.seen: dict[tuple[str, str], float] = {}
        self.count = 0  # watch events received: what the operator's own watch receives too
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{resource}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _mark(self, key: tuple[str, str]) -> None:
        self.seen.setdefault(key, time.monotonic())

    def _run(self) -> None:
        for event in watch_events(self.kube, self.resource, self._stop, self.field_selector):
            self.count += 1
            if self.field_selector:
                continue  # counted only: what an operator's filtered watch receives
            obj = event["object"]
            if self.resource == "jobs":
                name = obj["metadata"]["name"]
                self._mark((name, "created"))
                if _true(obj, "Complete", "SuccessCriteriaMet"):
                    self._mark((name, "complete"))
            else:
                job = (obj["metadata"].get("labels") or {}).get("job-name", "")
                phase = (obj.get("status") or {}).get("phase")
                if phase == "Running":
                    self._mark((job, "pod-running"))
                elif phase in ("Succeeded", "Failed"):
                    self._mark((job, "pod-ended"))


class KubeSession:
    """One scenario on the real control plane: a namespace, an operator, two watches."""

    counter = 0

    def __init__(
        self,
        plane: ControlPlane,
        credentials: Path,
        account: str,
        stock_settings: bool = False,
        operator_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        checkout: Path | None = None,
    ):
        KubeSession.counter += 1
        self.plane = plane
        self.kube = Kube(plane, f"bench-{os.getpid()}-{KubeSession.counter}")
        self.credentials = credentials
        self.account = f"system:serviceaccount:stepflow-system:{account}"
        self.env = {**({"STEPFLOW_KOPF_STOCK_SETTINGS": "1"} if stock_settings else {}), **(env or {})}
        self.operator_args = operator_args
        # Another checkout of stepflow (a git worktree of an older commit): its operator runs.
        self.checkout = checkout
        if checkout is not None:
            self.env["PYTHONPATH"] = str(checkout / "operator")
        self.operator: OperatorProcess | None = None
        self.watchers: list[Watcher] = []
        self.started = 0.0

    def __enter__(self) -> KubeSession:
        self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.kube.namespace}})
        wait_for(lambda: self.kube.get("serviceaccounts", "default"), timeout=30)
        self.watchers = [
            Watcher(self.kube, "jobs"),
            Watcher(self.kube, "pods"),
            Watcher(self.kube, "pods", POD_PHASES_WATCHED),
        ]
        log = self.plane.workdir / f"operator-{self.kube.namespace}.log"
        self.operator = OperatorProcess(
            self.credentials,
            log,
            *self.operator_args,
            env=self.env,
            **({"cwd": self.checkout} if self.checkout else {}),
        ).start()
        time.sleep(2.0)  # let kopf connect and list before the clock starts
        self.started = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        for watcher in self.watchers:
            watcher.stop()
        if self.operator is not None:
            self.operator.stop()
        self.kube.delete("namespaces", self.kube.namespace)
        # The next scenario starts once this one's objects are gone: their deletion would
        # otherwise load the API server, etcd and (through its watches) the next operator.
        wait_for(lambda: self.kube.get("namespaces", self.kube.namespace) is None, timeout=600,
                 interval=1.0, message=f"namespace {self.kube.namespace} deleted")

    def create(self, doc: dict[str, Any]) -> None:
        self.kube.create(doc)

    def wait_all(self, names: list[str], timeout: float) -> float:
        """Wait until every named workflow has finished; the latest finishedAt."""
        wanted = set(names)

        def finished() -> list[dict[str, Any]] | None:
            flows = [w for w in self.kube.objects("workflows") if w["metadata"]["name"] in wanted]
            done = [w for w in flows if (w.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
            return done if len(done) == len(wanted) else None

        done = wait_for(finished, timeout=timeout, interval=0.5)
        return max(parse_time(w["status"]["finishedAt"]) for w in done)

    def seen(self, job: str, moment: str) -> float | None:
        for watcher in self.watchers:
            if (job, moment) in watcher.seen:
                return watcher.seen[(job, moment)]
        return None

    def step_delays(self, chains: list[str], length: int) -> tuple[list[float], list[float]]:
        """Per step of each chain, in ms: the previous step's end seen (its pod ended or its Job
        Complete, whichever a client saw first; the operator acts on either) -> this Job created
        (the operator's reaction), and the previous pod ended -> this pod running (end to end,
        with the Job controller, the scheduler and kwok)."""
        reaction, end_to_end = [], []
        for name in chains:
            for i in range(1, length):
                before, after = f"{name}-1-s{i - 1:03d}", f"{name}-1-s{i:03d}"
                ends = [t for t in (self.seen(before, "pod-ended"), self.seen(before, "complete")) if t]
                pairs = (
                    (reaction, min(ends, default=None), self.seen(after, "created")),
                    (end_to_end, self.seen(before, "pod-ended"), self.seen(after, "pod-running")),
                )
                for samples, t0, t1 in pairs:
                    if t0 is not None and t1 is not None:
                        samples.append((t1 - t0) * 1000)
        return reaction, end_to_end

    def watch_counts(self) -> dict[str, int]:
        """Watch events so far, per resource, in this scenario's namespace."""
        return {
            watcher.resource + (", ended only" if watcher.field_selector else ""): watcher.count
            for watcher in self.watchers
        }

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the operator and by each control plane process."""
        assert self.operator is not None and self.operator.process is not None
        usage = {"operator": cpu_seconds(self.operator.process.pid)}
        for name, process in self.plane.processes.items():
            usage[name] = cpu_seconds(process.pid)
        return usage

    def peak_rss_mib(self) -> float:
        assert self.operator is not None and self.operator.process is not None
        return memory_mib(self.operator.process.pid, "VmHWM")

    def rss_mib(self) -> float:
        assert self.operator is not None and self.operator.process is not None
        return memory_mib(self.operator.process.pid, "VmRSS")

    def requests(self) -> dict[str, int]:
        """The operator's requests in this namespace, by verb and resource, from the audit log."""
        time.sleep(1.5)  # batched audit writes
        counts: dict[str, int] = {}
        for event in self.plane.audit_events():
            ref = event.get("objectRef") or {}
            if (
                event.get("user", {}).get("username") != self.account
                or ref.get("namespace") != self.kube.namespace
            ):
                continue
            key = f"{event['verb']} {ref.get('resource')}" + (
                f"/{ref['subresource']}" if ref.get("subresource") else ""
            )
            counts[key] = counts.get(key, 0) + 1
        return counts
