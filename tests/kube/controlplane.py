"""Run a real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, and kwok as the kubelet of fake nodes.

    with ControlPlane(assets, workdir) as plane:
        plane.kubectl("get", "nodes")

Every process is started with a parent-death signal, so nothing outlives the test run, even when
pytest itself is killed. Admin access is a client certificate in ``system:masters``; the tests
give the operator a ServiceAccount token instead (see ``tests/kube/README.md``).
"""

from __future__ import annotations

import base64
import ctypes
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from kube.build import kwok_logs_crd

HERE = Path(__file__).resolve().parent
STAGES = HERE / "stages.yaml"
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "resourcequota-controller",
    "deployment-controller",
    "replicaset-controller",
    # Lifts the not-ready taint that admission puts on a new node, once kwok reports it Ready.
    "node-lifecycle-controller",
)
PR_SET_PDEATHSIG = 1
POD_LOG = "hello from a kwok pod\nstep finished\n"
# Every request made with a ServiceAccount token (the operator's; the control plane's own
# components use the admin certificate) is written to the audit log: the benchmarks count the
# operator's API writes there, and the tests report which of deploy/'s permissions were used.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the test process goes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def cri_log(text: str) -> str:
    """``text`` in the CRI log format, as a container runtime writes it and kwok serves it."""
    stamp = "2026-01-01T00:00:00.000000000Z"
    return "".join(f"{stamp} stdout F {line}\n" for line in text.splitlines())


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> None:
    """A throwaway CA, a serving certificate for 127.0.0.1, an admin client certificate and the
    service-account signing key. EC keys: they take milliseconds to make."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=stepflow-test-ca",
        cwd=directory,
    )
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("server", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=stepflow-test-admin", "client.ext"),
    ):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            ext,
            cwd=directory,
        )
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=directory)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def kubeconfig(server: str, ca: Path, user: dict[str, str], namespace: str = "default") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "stepflow-test",
            "clusters": [
                {"name": "stepflow-test", "cluster": {"server": server, "certificate-authority": str(ca)}}
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [
                {
                    "name": "stepflow-test",
                    "context": {"cluster": "stepflow-test", "user": "user", "namespace": namespace},
                }
            ],
        }
    )


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, check: Callable[[], None] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.1)


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl command whose message shows what kubectl said."""

    def __str__(self) -> str:
        return f"kubectl {' '.join(self.cmd[2:])} exited {self.returncode}: {self.stderr.strip()}"


class ControlPlane:
    def __init__(self, assets: Path, workdir: Path, nodes: int = 2, profiling: bool = False):
        self.assets = Path(assets)
        self.profiling = profiling  # /debug/pprof on the API server, for benchmarks/status_write.py
        self.workdir = Path(workdir)
        self.pki = self.workdir / "pki"
        self.nodes = nodes
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.port = free_port()
        self.kubelet_port = free_port()
        self.pod_log = self.workdir / "pod.log"
        self.audit_log = self.workdir / "audit.log"
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.workdir / "admin.kubeconfig"

    # --- processes ----------------------------------------------------------------------------

    def binary(self, name: str) -> str:
        return str(self.assets / name)

    def spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [self.binary(name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,
        )
        self.processes[name] = process
        return process

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    # --- components ---------------------------------------------------------------------------

    def start_etcd(self) -> None:
        self.spawn(
            "etcd",
            [
                "--name=stepflow-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=stepflow-test=http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=1) as r:
                    return json.loads(r.read()).get("health") == "true"
            except OSError:
                return False

        wait_until(healthy, 30, "etcd did not become healthy", lambda: self._alive("etcd"))

    def start_apiserver(self) -> None:
        pki = self.pki
        self.spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--tls-cert-file={pki / 'server.crt'}",
                f"--tls-private-key-file={pki / 'server.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=Node,RBAC",
                # OwnerReferencesPermissionEnforcement: on by default in OpenShift (docs/install.md).
                "--enable-admission-plugins=NodeRestriction,PodSecurity,ResourceQuota,ServiceAccount,"
                "OwnerReferencesPermissionEnforcement",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--profiling={str(self.profiling).lower()}",
                "--v=1",
                f"--audit-policy-file={self.audit_policy()}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=batch",
                "--audit-log-batch-max-wait=1s",
            ],
        )
        self.kubeconfig.write_text(
            kubeconfig(
                self.url,
                pki / "ca.crt",
                {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
            )
        )
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2, context=context) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until(ready, 90, "kube-apiserver was not ready", lambda: self._alive("kube-apiserver"))

    def audit_policy(self) -> Path:
        path = self.workdir / "audit-policy.yaml"
        path.write_text(AUDIT_POLICY)
        return path

    def audit_events(self) -> list[dict[str, Any]]:
        """What the audit log holds so far (batched: up to a second behind)."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    def start_controllers(self) -> None:
        # kwok reads its Logs (one pod's log file) from the API, so that a test can give a pod a
        # log of its own; every other pod shows the ClusterLogs file of kwok_config().
        self.kubectl("apply", "-f", str(kwok_logs_crd()))
        self.spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                # The default client rate limit (20 requests/s) lets the Job controller, which
                # makes about 8 requests per Job, finish about 3 Jobs a second: it, not the
                # operator, would be what every throughput figure measured.
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--concurrent-job-syncs=20",
                "--v=1",
            ],
        )
        self.spawn(
            "kube-scheduler",
            # Its default client rate limit (50 requests/s) would cap pod bindings likewise.
            [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
        )
        self.spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.kwok_config()}",
                "--enable-crds=Logs",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                # kwok's kubelet API, through which the API server serves `kubectl logs`.
                f"--server-address=127.0.0.1:{self.kubelet_port}",
                f"--node-port={self.kubelet_port}",
                f"--tls-cert-file={self.pki / 'server.crt'}",
                f"--tls-private-key-file={self.pki / 'server.key'}",
            ],
        )
        for index in range(self.nodes):
            self.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": f"kwok-node-{index}",
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "kubernetes.io/hostname": f"kwok-node-{index}",
                        },
                    },
                }
            )

        def nodes_ready() -> bool:
            nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
            ready = [
                n
                for n in nodes
                if not n["spec"].get("taints")
                and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready) == self.nodes

        def default_account() -> bool:
            return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False) != ""

        for name, predicate in (
            ("the kwok nodes were not Ready", nodes_ready),
            ("the default ServiceAccount was not created", default_account),
        ):
            wait_until(predicate, 60, name, self._all_alive)

    def kwok_config(self) -> Path:
        """The Stages, plus the log every step container shows: kwok runs no process, so its
        log is a file, the same for every pod."""
        # kwok serves the file as a container runtime would: it must be in the CRI log format.
        self.pod_log.write_text(cri_log(POD_LOG))
        logs = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "step-logs"},
            "spec": {"logs": [{"containers": ["step"], "logsFile": str(self.pod_log), "follow": False}]},
        }
        path = self.workdir / "kwok.yaml"
        path.write_text(STAGES.read_text() + "\n---\n" + yaml.safe_dump(logs))
        return path

    def _all_alive(self) -> None:
        for name in list(self.processes):
            self._alive(name)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        try:
            self.start_etcd()
            self.start_apiserver()
            self.start_controllers()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def etcd(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """etcd's JSON gateway to its gRPC API (no etcdctl is built)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.etcd_port}/v3/{method}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def compact_etcd(self) -> None:
        """Drop etcd's history up to now: a watch resumed from an earlier resourceVersion then
        gets 410 Gone, as after a long network partition."""
        revision = int(self.etcd("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        self.etcd("kv/compaction", {"revision": revision, "physical": True})

    def restart_etcd(self) -> None:
        """etcd goes away and comes back with its data: the API server's requests fail meanwhile."""
        self.stop_process("etcd")
        self.start_etcd()

    def restart_apiserver(self) -> None:
        """As in an upgrade: every watch connection ends, and the new server's watch cache starts
        empty."""
        self.stop_process("kube-apiserver")
        self.start_apiserver()

    def stop(self) -> None:
        for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            self.stop_process(name)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- kubectl ------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> str:
        result = subprocess.run(
            [self.binary("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            if check:
                raise KubectlError(result.returncode, result.args, result.stdout, result.stderr)
            return ""
        return result.stdout

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Until each named CRD is Established. Not `kubectl wait`: right after a create a CRD
        has no conditions yet, and `kubectl wait` then fails instead of waiting."""

        def established() -> bool:
            found = json.loads(self.kubectl("get", "crd", "-o", "json"))["items"]
            ready = {crd["metadata"]["name"] for crd in found if any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in (crd.get("status") or {}).get("conditions") or ())}
            return set(crds) <= ready

        wait_until(established, timeout, f"CRDs {', '.join(crds)} were not Established")

    def token_kubeconfig(self, account: str, namespace: str, path: Path) -> Path:
        """A kubeconfig that logs in as a ServiceAccount, as the operator's pod would."""
        token = self.kubectl("create", "token", account, f"--namespace={namespace}", "--duration=6h").strip()
        path.write_text(kubeconfig(self.url, self.pki / "ca.crt", {"token": token}))
        return path

    def apply(self, obj: dict[str, Any] | str) -> str:
        text = obj if isinstance(obj, str) else json.dumps(obj)
        return self.kubectl("apply", "-f", "-", input=text)


def main() -> int:
    """``make cluster``: build or reuse the binaries, start the control plane, wait for Ctrl-C."""
    import tempfile

    from kube.build import ensure_assets

    assets = ensure_assets()
    workdir = Path(tempfile.mkdtemp(prefix="stepflow-kube-"))
    with ControlPlane(assets, workdir) as plane:
        plane.kubectl("apply", "-k", str(HERE.parents[1] / "deploy"))
        print(f"control plane ready in {plane.startup_seconds:.1f} s; logs in {workdir}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"export PATH={assets}:$PATH   # kubectl {assets.name.split('-')[1]}")
        print("Ctrl-C stops it.", flush=True)
        # Ctrl-C or SIGTERM (also when started from a script, where SIGINT may come ignored).
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stopping.set())
        stopping.wait()
        print("stopping the control plane", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
