"""Faults on the real control plane, with two replicas and leader election (L1-L3).

Each test runs the same three workflows (groups, a capped fan-out, and a FailFast one), injects
one fault mid-run, and then checks what a user would: exactly one Job (and one pod) per step
that ran, every workflow in the phase its steps imply, and no status that ever went backwards.
``make chaos`` runs these (`pytest -m chaos`); they are left out of ``make test``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.table import Table

from kube.realcluster import CHAOS_FIGURES, Kube, step, wait_for, workflow
from operator_harness import ROOT, OperatorProcess, free_port, operators
from stepflow.status import parse_time

pytestmark = pytest.mark.chaos

LEASE_NAMESPACE = "stepflow-system"
LEASE = "stepflow-operator"
LEASE_DURATION, RENEW_DEADLINE = 15.0, 10.0  # client-go's defaults, which deploy/ uses
TERMINAL = ("Succeeded", "Failed", "Skipped", "Cancelled")

# The reliability page's table (docs/reliability.md): each figure's label, and what it is held to.
FIGURE_ROWS = {
    "takeover after SIGKILL (s)": ("takeover after SIGKILL of the leader (s)",
                                   f"<= {LEASE_DURATION + 5:.0f} s: the lease duration + 5 s (L2)"),
    "takeover after SIGTERM (s)": ("takeover after SIGTERM of the leader (s)", "<= 2 s (L2)"),
    "partitioned leader exited after (s)": ("partition: the cut leader fenced itself and exited, "
                                            "seconds after the cut", "before the takeover (L3)"),
    "takeover after a partition (s)": ("partition: a standby took over, seconds after the cut",
                                       "once the old lease has run out"),
    "soak workflows": ("soak: workflows of 5 steps, the leader killed halfway", "every one Succeeded"),
    "soak steps": ("soak: steps, each with exactly one Job", "no duplicate, none lost"),
    "soak wall_s": ("soak: wall time (s)", ""),
    "soak requests_per_step": ("soak: the operator's API requests per step (audit log)", ""),
    "soak writes_per_step": ("soak: of which writes", "<= 3 (DESIGN.md)"),
    "soak events_stored_per_step": ("soak: Events stored per step", ""),
    "soak event_creates_audited_per_step": ("soak: Event creates in the audit log per step",
                                            "as many as stored: none dropped"),
    "soak peak_rss_mib_standby_then_leader": ("soak: peak RSS of the replica that was standby, then "
                                              "leader (MiB)", ""),
}


@pytest.fixture(scope="module", autouse=True)
def reliability_table() -> Iterator[None]:
    """With STEPFLOW_CHAOS_MARKDOWN (``make chaos`` sets it), the figures of the tests that ran
    are written there as Markdown, with the date, machine and command, for the docs."""
    yield
    path = os.environ.get("STEPFLOW_CHAOS_MARKDOWN")
    if not path or not CHAOS_FIGURES:
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import figures  # benchmarks/figures.py: one writer for every table of the docs

    table = Table(title=f"make chaos: two replicas with --leader-elect, lease {LEASE_DURATION:.0f} s, "
                        f"renew deadline {RENEW_DEADLINE:.0f} s")
    for column in ("measure", "this run", "promise"):
        table.add_column(column, justify="right" if column == "this run" else "left")
    for key, value in CHAOS_FIGURES.items():
        label, promise = FIGURE_ROWS.get(key, (key, ""))
        table.add_row(label, "-" if value is None else str(value), promise)
    figures.write_markdown(path, [table], env=("STEPFLOW_CHAOS_MARKDOWN",))


def scenario() -> list[dict[str, Any]]:
    return [
        workflow("groups", [
            step("a", "1s", parallel=True), step("b", "1s", parallel=True), step("c", "1s"),
            step("d", "1s", parallel=True), step("e", "1s", parallel=True), step("f", "1s"),
        ]),
        workflow("capped", [step(f"p{i}", "1500ms", parallel=True) for i in range(6)], maxConcurrency=2),
        workflow("failfast", [
            step("boom", "1s", parallel=True, exit_code=1), step("slow", "30s", parallel=True),
            step("never"),
        ], failurePolicy="FailFast"),
    ]


EXPECTED = {
    "groups": ("Succeeded", {s: "Succeeded" for s in "abcdef"}),
    "capped": ("Succeeded", {f"p{i}": "Succeeded" for i in range(6)}),
    "failfast": ("Failed", {"boom": "Failed", "slow": "Cancelled", "never": "Skipped"}),
}


def check_outcome(kube: Kube) -> None:
    """The phases the steps imply, one Job and one pod per step that ran, nothing backwards."""
    for name, (phase, steps) in EXPECTED.items():
        status = kube.wait_phase(name, timeout=120)
        assert status["phase"] == phase, (name, status.get("message"))
        assert {s: e["phase"] for s, e in status["steps"].items()} == steps, name
        # A cancelled step's Job is deleted (FailFast stops it); every other step that ran keeps one.
        ran = {s for s, e in status["steps"].items() if e.get("jobName") and e["phase"] != "Cancelled"}
        jobs = sorted(j["metadata"]["name"] for j in kube.jobs(name))
        assert jobs == sorted(f"{name}-1-{s}" for s in ran)
        for job in kube.jobs(name):
            assert len(kube.pods(job["metadata"]["name"])) == 1, job["metadata"]["name"]
    assert not went_backwards(kube.recorder.seen)


RANK = {"Pending": 0, "Running": 1}


def went_backwards(seen: list[dict[str, Any]]) -> list[str]:
    """Every stored status, in resourceVersion order: no step leaves a terminal phase or goes
    from Running back to Pending, and progress never shrinks."""
    problems: list[str] = []
    last: dict[str, dict[str, Any]] = {}
    for obj in sorted(seen, key=lambda o: int(o["metadata"]["resourceVersion"])):
        name, status = obj["metadata"]["name"], obj["status"]
        before = last.get(name)
        if before is not None and before.get("runGeneration") == status.get("runGeneration"):
            for step_name, entry in (status.get("steps") or {}).items():
                old = (before.get("steps") or {}).get(step_name, {}).get("phase", "Pending")
                new = entry.get("phase", "Pending")
                if (old in TERMINAL and new != old) or RANK.get(new, 2) < RANK.get(old, 2):
                    problems.append(f"{name}.{step_name}: {old} -> {new}")
            done = lambda s: int((s.get("progress") or "0/0").split("/")[0])  # noqa: E731
            if done(status) < done(before):
                problems.append(f"{name}: progress {before.get('progress')} -> {status.get('progress')}")
        last[name] = status
    return problems


def lease_holder(kube: Kube) -> str:
    lease = kube.get("leases", LEASE, namespace=LEASE_NAMESPACE) or {}
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def identity(process: OperatorProcess) -> str:
    found = wait_for(lambda: re.search(r"leader election on lease \S+ as (\S+)", process.log()),
                     message="the operator never said its identity")
    return found.group(1)


class Replicas:
    """Two operator processes with --leader-elect, as deploy/ runs them."""

    def __init__(self, kube: Kube, start: Callable[..., OperatorProcess]):
        self.kube, self.start = kube, start
        self.started: list[OperatorProcess] = []
        # While the API server restarts, its RBAC authorizer answers 403 until its caches
        # have synced: refusals logged in such a window (wall-clock seconds) are expected.
        self.excused: list[tuple[float, float]] = []

    def one(self, kubeconfig: Path | None = None) -> OperatorProcess:
        port = free_port()
        process = self.start("--leader-elect", f"--leader-elect-namespace={LEASE_NAMESPACE}",
                             env={"STEPFLOW_METRICS_PORT": str(port)}, kubeconfig=kubeconfig)
        process.metrics_port = port  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    @contextlib.contextmanager
    def api_outage(self, grace: float = 15.0) -> Iterator[None]:
        began = time.time()
        try:
            yield
        finally:
            self.excused.append((began, time.time() + grace))

    def refusals(self) -> list[str]:
        found = []
        for process in self.started:
            for line in process.log().splitlines():
                at = _logged_at(line)
                if "forbidden" in line and at is not None and not any(a <= at <= b for a, b in self.excused):
                    found.append(line[:300])
        return found

    def writes_outside_leadership(self, plane: Any) -> list[str]:
        """L1, from the API server's audit log: each replica's writes (its user agent names its
        identity) fall between its "became the leader" line and its "lost" or "released" line.
        Its Lease requests are the election itself and are left out."""
        time.sleep(1.5)  # the audit log is written in batches of up to a second
        events = plane.audit_events()
        found = []
        for process in self.started:
            me, lines = identity(process), process.log().splitlines()
            began = next((_logged_at(x) for x in lines if "became the leader" in x), None)
            ended = next((_logged_at(x) for x in lines if "lost the lease" in x or "released the lease" in x),
                         None)
            for event in events:
                ref = event.get("objectRef") or {}
                if me not in event.get("userAgent", "") or ref.get("resource") == "leases" or (
                        event.get("verb") not in ("create", "update", "patch", "delete")):
                    continue
                at = _audit_time(event)
                if began is None or at < began or (ended is not None and at > ended):
                    found.append(f"{me}: {event['verb']} {ref.get('resource')} at {at:.3f} "
                                 f"(leading {began} to {ended})")
        return found


    def leader_of(self, processes: list[OperatorProcess]) -> OperatorProcess:
        wait_for(lambda: lease_holder(self.kube), timeout=30, message="nobody took the lease")
        ids = {identity(p): p for p in processes}
        return wait_for(lambda: ids.get(lease_holder(self.kube)), timeout=30)


def _logged_at(line: str) -> float | None:
    """The time of an operator log line ("[2026-12-02 13:38:26,489] ..."), in UTC as logged."""
    stamp = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]", line)
    if stamp is None:
        return None
    return parse_time(stamp.group(1).replace(" ", "T") + "Z") + int(stamp.group(2)) / 1000


@pytest.fixture
def replicas(kube: Kube, operator_kubeconfig: Path, tmp_path: Path, control_plane: Any) -> Iterator[Replicas]:
    """Like the start_operator fixture (a traceback fails the test), with refusals checked
    outside the API server's own restarts, and every write checked against who led when."""
    kube.delete("leases", LEASE, namespace=LEASE_NAMESPACE)  # each test starts with no leader
    with operators(operator_kubeconfig, tmp_path) as start:
        replicas = Replicas(kube, start)
        yield replicas
        outside = replicas.writes_outside_leadership(control_plane)
    assert not replicas.refusals(), "the operator logged:\n" + "\n".join(replicas.refusals()[:10])
    assert not outside, "a replica wrote while it did not lead:\n" + "\n".join(outside[:10])
    kube.delete("leases", LEASE, namespace=LEASE_NAMESPACE)


def start_scenario(kube: Kube) -> None:
    """Create the workflows and wait until every first step has its Job, before the fault.

    A fault that fell between the Jobs of ``boom`` and ``slow`` would make another outcome
    right: a new leader that finds ``boom`` failed and ``slow`` not started skips it (F2: nothing
    else starts) instead of cancelling it. Waiting here keeps the expected phases one set.
    """
    for doc in scenario():
        kube.create(doc)
    wait_for(lambda: kube.step_phase("groups", "a") == kube.step_phase("capped", "p0") == "Running"
             and kube.step_phase("failfast", "slow") in ("Running", "Cancelled"),
             timeout=30, message="the scenario never started")


def leader_metric(process: OperatorProcess) -> float:
    url = f"http://127.0.0.1:{process.metrics_port}/metrics"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=2) as response:
        return float(re.search(r"^stepflow_leader (\S+)$", response.read().decode(), re.M).group(1))


def takeover(kube: Kube, old: str, since: float, timeout: float) -> float:
    """Seconds from ``since`` until the Lease names a holder other than ``old``."""
    wait_for(lambda: lease_holder(kube) not in ("", old), timeout=timeout, interval=0.02,
             message=f"no standby took the lease from {old} within {timeout}s")
    return time.monotonic() - since


def test_sigkill_of_the_leader_a_standby_takes_over_within_the_lease_plus_5s(kube, replicas):
    first, second = replicas.one(), replicas.one()
    leader = replicas.leader_of([first, second])
    standby = second if leader is first else first
    assert leader_metric(leader) == 1 and leader_metric(standby) == 0
    start_scenario(kube)
    killed = time.monotonic()
    leader.kill()
    took = takeover(kube, identity(leader), killed, LEASE_DURATION + 5)
    CHAOS_FIGURES["takeover after SIGKILL (s)"] = round(took, 2)
    wait_for(lambda: "became the leader" in standby.log())
    check_outcome(kube)
    assert leader_metric(standby) == 1


def test_sigterm_of_the_leader_releases_the_lease_and_a_standby_takes_over_within_2s(kube, replicas):
    first, second = replicas.one(), replicas.one()
    leader = replicas.leader_of([first, second])
    start_scenario(kube)
    stopped = time.monotonic()
    leader.process.send_signal(signal.SIGTERM)
    took = takeover(kube, identity(leader), stopped, 2.0)
    CHAOS_FIGURES["takeover after SIGTERM (s)"] = round(took, 2)
    assert leader.process.wait(15) == 0
    assert "released the lease" in leader.log()
    check_outcome(kube)


class Proxy:
    """A loopback TCP proxy to the API server that the test can cut and restore."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break the open ones, as a partition does."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def test_a_partitioned_leader_stops_writing_before_its_lease_expires_and_exits(
        kube, replicas, control_plane, operator_kubeconfig, tmp_path):
    proxy = Proxy(control_plane.port)
    proxied = tmp_path / "proxied.kubeconfig"
    proxied.write_text(operator_kubeconfig.read_text().replace(
        f"127.0.0.1:{control_plane.port}", f"127.0.0.1:{proxy.port}"))
    leader = replicas.one(kubeconfig=proxied)
    wait_for(lambda: lease_holder(kube) == identity(leader), timeout=30)
    standby = replicas.one()
    wait_for(lambda: "standing by" in standby.log(), timeout=30)  # it has seen the lease renewed
    start_scenario(kube)
    old = identity(leader)
    changed: list[float] = []  # when the Lease first named another holder, seen every 20 ms
    polling = threading.Event()

    def poll() -> None:
        while not polling.is_set() and not changed:
            if lease_holder(kube) not in ("", old):
                changed.append(time.monotonic())
            time.sleep(0.02)

    cut = time.monotonic()
    proxy.cut()
    threading.Thread(target=poll, daemon=True).start()
    code = leader.process.wait(RENEW_DEADLINE + 10)
    exited = time.monotonic() - cut
    assert code == 1 and "lost the lease" in leader.log()
    wait_for(lambda: changed, timeout=LEASE_DURATION + 10, message="no standby took the lease")
    polling.set()
    took = changed[0] - cut
    CHAOS_FIGURES["takeover after a partition (s)"] = round(took, 2)
    CHAOS_FIGURES["partitioned leader exited after (s)"] = round(exited, 2)
    assert exited < took, "the old leader still ran when the standby took over"
    assert exited <= RENEW_DEADLINE + 3  # fenced at the renew deadline, after its last renewal
    proxy.restore()  # the network comes back; the old leader is gone and cannot write again
    wait_for(lambda: "became the leader" in standby.log())
    check_outcome(kube)


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_a_restart_mid_run_loses_and_duplicates_nothing(kube, replicas, control_plane, component):
    first, second = replicas.one(), replicas.one()
    replicas.leader_of([first, second])
    start_scenario(kube)
    restart = control_plane.restart_apiserver if component == "kube-apiserver" else control_plane.restart_etcd
    with replicas.api_outage():
        restart()
    check_outcome(kube)


def test_watches_that_fall_behind_a_compaction_list_again_and_lose_nothing(kube, replicas, control_plane):
    first, second = replicas.one(), replicas.one()
    replicas.leader_of([first, second])
    start_scenario(kube)
    restarted = time.time()
    with replicas.api_outage():
        control_plane.compact_etcd()
        control_plane.restart_apiserver()  # resumed watches are older than the compacted history
    check_outcome(kube)
    time.sleep(1.5)  # the audit log is written in batches of up to a second
    account = "system:serviceaccount:stepflow-system:stepflow-operator"
    relists = [e for e in control_plane.audit_events()
               if e.get("user", {}).get("username") == account and e.get("verb") == "list"
               and e.get("objectRef", {}).get("resource") == "jobs"
               and _audit_time(e) > restarted]
    assert relists, "no replica listed Jobs again after the compaction: there was no 410 to test"


def _audit_time(event: dict[str, Any]) -> float:
    return parse_time(event.get("requestReceivedTimestamp")) or 0.0


SOAK_WORKFLOWS = int(os.environ.get("STEPFLOW_SOAK_WORKFLOWS", "1000"))


def test_soak_1000_workflows_with_the_leader_killed_halfway(kube, replicas, control_plane, tmp_path):
    first, second = replicas.one(), replicas.one()
    leader = replicas.leader_of([first, second])
    standby = second if leader is first else first
    started = time.monotonic()
    began = time.time()
    for i in range(SOAK_WORKFLOWS):
        kube.create(workflow(f"soak-{i}", [step(f"s{j}", None) for j in range(5)]))

    def succeeded() -> int:
        items = kube.objects("workflows")
        return sum(1 for w in items if (w.get("status") or {}).get("phase") == "Succeeded")

    wait_for(lambda: succeeded() >= SOAK_WORKFLOWS // 2, timeout=900, interval=2.0)
    leader.kill()
    wait_for(lambda: succeeded() == SOAK_WORKFLOWS, timeout=900, interval=5.0,
             message="not every soak workflow succeeded")
    wall = time.monotonic() - started
    jobs = kube.objects("jobs")
    assert len(jobs) == 5 * SOAK_WORKFLOWS == len({j["metadata"]["name"] for j in jobs})
    for w in kube.objects("workflows"):
        phases = [e["phase"] for e in w["status"]["steps"].values()]
        assert phases == ["Succeeded"] * 5, w["metadata"]["name"]
    time.sleep(1.5)
    account = "system:serviceaccount:stepflow-system:stepflow-operator"
    requests = [e for e in control_plane.audit_events()
                if e.get("user", {}).get("username") == account and _audit_time(e) >= began]
    writes = [e for e in requests if e.get("verb") in ("create", "update", "patch", "delete")]
    # A cross-check of the audit log, which drops entries when its buffer fills: the Events the
    # API server stored (both replicas post them, each only while it leads).
    events = [e for e in kube.objects("events")
              if (e.get("source") or {}).get("component") == "stepflow-operator"]
    audited_event_creates = sum(1 for e in writes if e["objectRef"].get("resource") == "events")
    rss = {name: _peak_rss_mib(p) for name, p in (("killed leader", leader), ("standby", standby))}
    figures = {"workflows": SOAK_WORKFLOWS, "steps": 5 * SOAK_WORKFLOWS, "wall_s": round(wall, 1),
               "requests_per_step": round(len(requests) / (5 * SOAK_WORKFLOWS), 2),
               "writes_per_step": round(len(writes) / (5 * SOAK_WORKFLOWS), 2),
               "events_stored_per_step": round(len(events) / (5 * SOAK_WORKFLOWS), 2),
               "event_creates_audited_per_step": round(audited_event_creates / (5 * SOAK_WORKFLOWS), 2),
               "peak_rss_mib_standby_then_leader": rss["standby"]}
    CHAOS_FIGURES.update({f"soak {k}": v for k, v in figures.items()})
    out = os.environ.get("STEPFLOW_CHAOS_JSON")
    if out:
        Path(out).write_text(json.dumps(CHAOS_FIGURES, indent=2))


def _peak_rss_mib(process: OperatorProcess) -> float | None:
    """VmHWM of a process still running (the killed one has none left to read)."""
    try:
        text = Path(f"/proc/{process.process.pid}/status").read_text()
    except OSError:
        return None
    kib = int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1))
    return round(kib / 1024, 1)
