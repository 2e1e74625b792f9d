"""Argo Workflows and Tekton Pipelines on the real control plane tier, for benchmarks/peers.py only.

Each peer's controller is built from the Go module proxy once per machine, like Kueue and Helm
(tests/kube/build.py), from a wrapper module committed under ``gomod/argo`` or ``gomod/tekton``:
a ``tool`` directive pins the controller's package and go.sum every dependency, so the build is
reproducible and needs no version list from the proxy (which refuses Tekton's, so a plain
``go install ...@v1.15.1`` fails). Neither wrapper enters the control plane's digest.

    cd tests && python -m kube.peers    # build what is missing, print the two cache folders

Argo: ``github.com/argoproj/argo-workflows/v3`` v3.7.18, not ``/v4`` v4.0.5 (the newest served):
/v4 v4.0.5 has reported security flaws (/work/.library/env/packages/go-partial.tsv), and v3.7.18
builds. Its go.mod has one ``replace`` (olekukonko/tablewriter => v0.0.5), which binds only in a
main module, so the wrapper's go.mod repeats it.

Each controller runs as a process of this machine (not a pod), logged in with a ServiceAccount
token of its own (``ControlPlane.token_kubeconfig``), so that the API server's audit log tells
stepflow, Argo and Tekton apart; its RBAC comes from its own manifests. No webhook runs (the
tier's API server cannot reach one behind a Service): Tekton's CRDs lose their conversion
webhook, which only converts between v1beta1 and v1, and the benchmark writes v1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kube.build import GOMOD, HERE, BuildError, _go, _staged, _timed, _wrapper_digest, cache_root
from kube.controlplane import AUDIT_POLICY, ControlPlane, _die_with_parent

PEER_STAGES = HERE / "peer-stages.yaml"
# What the components logged in with the admin certificate do to a pod, for the benchmark to
# time a controller's reaction and the phases of a step (benchmarks/peer_phases.py): kwok's
# writes of its status (the first is when it ran, the last when it ended), the scheduler's
# binding, and the Job controller's create. That create is logged with its request, because a
# pod made from ``generateName`` has no name yet when the API server logs it: its
# ``generateName`` (``<job>-``) ties it to its Job. Only this control plane logs these, so the
# tests that count requests see the audit log they always saw.
POD_RULES = """  - level: Metadata
    users: ["stepflow-test-admin"]
    verbs: ["patch", "update"]
    resources: [{group: "", resources: ["pods/status"]}]
  - level: Metadata
    users: ["stepflow-test-admin"]
    verbs: ["create"]
    resources: [{group: "", resources: ["pods/binding"]}]
  - level: Request
    users: ["stepflow-test-admin"]
    verbs: ["create"]
    resources: [{group: "", resources: ["pods"]}]
"""


@dataclass(frozen=True)
class Peer:
    """One peer's controller: its module, the package built, and what is copied beside it."""

    name: str  # also the wrapper's folder under gomod/
    module: str
    version: str
    package: str
    copies: dict[str, str] = field(default_factory=dict)  # cache folder name -> path in the module

    @property
    def binary(self) -> str:
        return self.package.rsplit("/", 1)[1]


ARGO = Peer(
    "argo",
    "github.com/argoproj/argo-workflows/v3",
    "v3.7.18",
    "github.com/argoproj/argo-workflows/v3/cmd/workflow-controller",
    {"crds": "manifests/base/crds/minimal",
     "rbac": "manifests/cluster-install-no-crds/workflow-controller-rbac"},
)
TEKTON = Peer(
    "tekton",
    "github.com/tektoncd/pipeline",
    "v1.15.1",
    "github.com/tektoncd/pipeline/cmd/controller",
    {"config": "config"},
)
PEERS = (ARGO, TEKTON)
IMAGE_FLAGS = ("entrypoint-image", "nop-image", "sidecarlogresults-image", "workingdirinit-image",
               "shell-image", "shell-image-win")


def peer_dir(peer: Peer) -> Path:
    return cache_root() / f"{peer.name}-{peer.version}-{_wrapper_digest(GOMOD / peer.name)}"


def ensure_peer(peer: Peer) -> Path:
    """The cache folder holding the peer's controller and its manifests, built once per machine
    (CGO_ENABLED=0, -trimpath, stripped), step by step on stderr like the rest of the tier."""
    target = peer_dir(peer)
    if (target / peer.binary).is_file() and all((target / name).is_dir() for name in peer.copies):
        return target
    with _staged(target) as staging:
        _timed(
            f"{peer.name} {peer.version} controller (one time per machine, a few minutes on 2 cores)",
            lambda: _go(
                ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(staging / peer.binary), peer.package],
                GOMOD / peer.name,
            ),
        )
        info = json.loads(
            _go(["mod", "download", "-json", f"{peer.module}@{peer.version}"], HERE, {"GOFLAGS": ""})
        )
        for name, source in peer.copies.items():
            shutil.copytree(Path(info["Dir"]) / source, staging / name)
            for path in (staging / name).rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
    return target


def ensure_argo() -> Path:
    return ensure_peer(ARGO)


def ensure_tekton() -> Path:
    return ensure_peer(TEKTON)


class PeerControlPlane(ControlPlane):
    """The tier's control plane, with kwok Stages that end the peers' pods and an audit log that
    also records each pod's create, binding and status writes (POD_RULES)."""

    def kwok_config(self) -> Path:
        path = super().kwok_config()
        path.write_text(path.read_text() + "\n---\n" + PEER_STAGES.read_text())
        return path

    def spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        """The API server never rotates its audit log (by default it does at 100 MB, which a full
        benchmark run passes), so that one file holds the run."""
        if name == "kube-apiserver":
            args = [*args, "--audit-log-maxsize=1000000"]
        return super().spawn(name, args)

    def audit_policy(self) -> Path:
        path = self.workdir / "audit-policy.yaml"
        rules = AUDIT_POLICY.replace("  - level: None\n", POD_RULES + "  - level: None\n")
        assert rules != AUDIT_POLICY, "the tier's audit policy changed shape"
        path.write_text(rules)
        return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _documents(*paths: Path) -> list[dict[str, Any]]:
    """Every object in the files; kustomize's own files (kind Kustomization) are not objects."""
    found = [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]
    return [d for d in found if d.get("kind") != "Kustomization"]


class PeerController:
    """One peer's controller process on a running control plane: ``install`` once, then
    ``start``/``stop`` for each variant."""

    namespace = ""
    account = ""

    def __init__(self, plane: ControlPlane, folder: Path):
        self.plane, self.folder = plane, folder
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = plane.workdir / f"{type(self).__name__.lower()}.log"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"

    def apply(self, documents: list[dict[str, Any]]) -> None:
        self.plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                           input="\n---\n".join(yaml.safe_dump(d) for d in documents))

    def install(self) -> None:
        raise NotImplementedError

    def install_crds(self, crds: list[dict[str, Any]]) -> None:
        self.apply(crds)
        self.plane.wait_established(*(crd["metadata"]["name"] for crd in crds))

    def command(self, kubeconfig: Path, tuned: bool) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self, tuned: bool = False) -> PeerController:
        kubeconfig = self.plane.token_kubeconfig(
            self.account, self.namespace, self.plane.workdir / f"{self.account}.kubeconfig")
        args, env = self.command(kubeconfig, tuned)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.folder / args[0]), *args[1:]], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.plane.workdir, env={**os.environ, **env},
                preexec_fn=_die_with_parent)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, as a kubelet stops a pod; SIGKILL if it has not gone within 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _namespaced(documents: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Namespaced objects and ServiceAccount subjects put in ``namespace`` (kustomize's job)."""
    for doc in documents:
        if doc["kind"] in ("Role", "RoleBinding", "ServiceAccount", "ConfigMap"):
            doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects") or ():
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace
    return documents


class Argo(PeerController):
    """Argo Workflows' workflow-controller, leader election off (one replica), metrics off."""

    namespace, account = "argo", "argo"

    def install(self) -> None:
        rbac = _documents(*sorted((self.folder / "rbac").glob("workflow-controller-*.yaml")))
        config = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "workflow-controller-configmap"},
                  # Its Prometheus server would take port 9090 of this shared machine.
                  "data": {"metricsConfig": "enabled: false\n", "telemetryConfig": "enabled: false\n"}}
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.account}}
        self.install_crds(_documents(*sorted((self.folder / "crds").glob("*.yaml"))))
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}])
        self.apply(_namespaced([account, config, *rbac], self.namespace))

    def command(self, kubeconfig: Path, tuned: bool) -> tuple[list[str], dict[str, str]]:
        """Defaults: 10 s requeue, 20 requests/s (burst 30), 32 workflow workers. Tuned: the 1 s
        requeue of Argo's own dev setup (its Makefile), and the client rate limit raised as
        docs/scaling.md advises, to the tier's controller-manager's 500/1000."""
        args = ["workflow-controller", f"--kubeconfig={kubeconfig}", f"--namespace={self.namespace}",
                "--configmap=workflow-controller-configmap",
                f"--executor-image=quay.io/argoproj/argoexec:{ARGO.version}"]
        env = {"LEADER_ELECTION_DISABLE": "true", "ARGO_PPROF": "false"}
        if tuned:
            args += ["--qps=500", "--burst=1000"]
            env["DEFAULT_REQUEUE_TIME"] = "1s"
        return args, env


class Tekton(PeerController):
    """Tekton Pipelines' controller, with high availability off (one replica), every
    config/config-*.yaml installed, and no webhook."""

    namespace, account = "tekton-pipelines", "tekton-pipelines-controller"
    THREADS = 32  # the same as Argo's workflow workers; knative's default is 2
    # Its matrix fans out to at most 256 TaskRuns by default; the 1,000-step fan-out needs more.
    MAX_MATRIX = 1000

    def install(self) -> None:
        config = self.folder / "config"
        crds = _documents(*sorted((config / "300-crds").glob("*.yaml")))
        for crd in crds:
            crd["spec"].pop("conversion", None)
        rbac = _documents(config / "200-serviceaccount.yaml", config / "200-clusterrole.yaml",
                          config / "200-role.yaml", config / "201-clusterrolebinding.yaml",
                          config / "201-rolebinding.yaml")
        settings = [self._configured(d) for d in _documents(*sorted(config.glob("config-*.yaml")))]
        self.install_crds(crds)
        self.apply(_documents(config / "100-namespace" / "100-namespace.yaml"))
        self.apply(rbac + settings)

    def _configured(self, doc: dict[str, Any]) -> dict[str, Any]:
        data = doc.setdefault("data", {}) or {}
        doc["data"] = data
        name = doc["metadata"]["name"]
        if name == "feature-flags":
            data["disable-creds-init"] = "true"  # no credentials to copy into the pods
        elif name == "config-defaults":
            data["default-max-matrix-combinations-count"] = str(self.MAX_MATRIX)
        elif name == "config-observability":
            data["metrics-protocol"] = "none"  # its Prometheus server would take port 9090
        return doc

    def command(self, kubeconfig: Path, tuned: bool) -> tuple[list[str], dict[str, str]]:
        """The six image flags with dummy values (kwok runs no image); the client rate limit
        raised like the tier's controller-manager (Tekton doubles it: 500 requests/s)."""
        images = [f"-{flag}=example.invalid/tekton/{flag}:{TEKTON.version}" for flag in IMAGE_FLAGS]
        args = ["controller", f"-kubeconfig={kubeconfig}", "-disable-ha",
                f"-threads-per-controller={self.THREADS}", "-kube-api-qps=250", "-kube-api-burst=500",
                *images]
        env = {"SYSTEM_NAMESPACE": self.namespace, "KUBERNETES_MIN_VERSION": "v1.28.0",
               "CONFIG_DEFAULTS_NAME": "config-defaults", "CONFIG_LOGGING_NAME": "config-logging",
               "CONFIG_OBSERVABILITY_NAME": "config-observability",
               "CONFIG_FEATURE_FLAGS_NAME": "feature-flags",
               "CONFIG_LEADERELECTION_NAME": "config-leader-election-controller",
               "CONFIG_SPIRE": "config-spire", "METRICS_DOMAIN": "tekton.dev/pipeline",
               "PROBES_PORT": str(free_port()), "PROFILING_PORT": str(free_port())}
        return args, env


def main() -> int:
    try:
        for peer in PEERS:
            print(ensure_peer(peer))
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # cd tests && python -m kube.peers
    sys.exit(main())
