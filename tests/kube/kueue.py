"""Kueue's real controller beside the real control plane, for R3's tests.

Kueue serves webhooks and converts its CRDs' versions through a webhook; this tier's API server
cannot reach a webhook behind a Service, so none is registered, and the tests use only Kueue's
storage version (v1beta2), which needs no conversion. What Kueue's certificate rotation insists
on is still provided: its namespace, the empty Secret it fills, webhook configurations with no
webhooks, a conversion stanza on the CRDs it patches, and the Secret's certificate written to
its certificate folder, as a kubelet mounting the Secret would. Admission itself (Workloads, quotas,
un-suspending Jobs) is Kueue's own code, unchanged.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kube.controlplane import ControlPlane
from kube.realcluster import wait_for
from operator_harness import stop_process

NAMESPACE = "kueue-system"
SERVICE = "kueue-webhook-service"
SECRET = "kueue-webhook-server-cert"
# The CRDs whose caBundle Kueue's rotator injects (pkg/util/cert of Kueue v0.17).
CONVERTED = ("localqueues", "clusterqueues", "workloads", "cohorts", "multikueueclusters")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _crds(folder: Path) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["plural"] in CONVERTED:
            crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {"service": {"name": SERVICE, "namespace": NAMESPACE, "path": "/convert"}}}}
        documents.append(crd)
    return documents


def _scaffold() -> list[dict[str, Any]]:
    empty = [{"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
              "metadata": {"name": f"kueue-{part}-webhook-configuration"}}
             for kind, part in (("ValidatingWebhookConfiguration", "validating"),
                                ("MutatingWebhookConfiguration", "mutating"))]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NAMESPACE}},
            *empty]


class Kueue:
    """Kueue's controller manager, with the batch/job integration only, as the admin."""

    def __init__(self, plane: ControlPlane, folder: Path):
        self.plane, self.folder = plane, folder
        self.workdir = plane.workdir / "kueue"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> Path:
        config = {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": NAMESPACE,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{_free_port()}"},
            "metrics": {"bindAddress": "0"},
            "webhook": {"port": _free_port(), "certDir": str(self.workdir / "certs")},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": True, "webhookServiceName": SERVICE,
                                       "webhookSecretName": SECRET},
            "integrations": {"frameworks": ["batch/job"]},
        }
        path = self.workdir / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> Kueue:
        self.workdir.mkdir(parents=True, exist_ok=True)
        documents = _crds(self.folder / "crds") + _scaffold()
        self.plane.kubectl("apply", "--server-side", "-f", "-",
                           input="\n---\n".join(yaml.safe_dump(d) for d in documents))
        self.plane.wait_established(*(f"{plural}.kueue.x-k8s.io" for plural in CONVERTED))
        log = (self.workdir / "kueue.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.folder / "kueue"), f"--config={self.config()}",
             f"--visibility-server-port={_free_port()}", f"--kubeconfig={self.plane.kubeconfig}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir)
        self._mount_certificate()
        return self

    def _mount_certificate(self) -> None:
        """What the kubelet does for Kueue's pod: the Secret's files in its certificate folder."""
        def filled() -> dict[str, str] | None:
            out = self.plane.kubectl("get", "secret", SECRET, f"--namespace={NAMESPACE}", "-o", "json")
            data = json.loads(out).get("data") or {}
            return data if {"tls.crt", "tls.key"} <= set(data) else None

        data = wait_for(filled, timeout=60, message=f"Kueue never filled its Secret:\n{self.log()[-3000:]}")
        folder = self.workdir / "certs"
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("tls.crt", "tls.key", "ca.crt"):
            if name in data:
                (folder / name).write_bytes(base64.b64decode(data[name]))

    def log(self) -> str:
        path = self.workdir / "kueue.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)
