"""A watch gap on the real control plane: objects are deleted while the operator is frozen and
cut off, then etcd's history is compacted and the API server restarted.

The operator's watches, resumed from before, get 410 Gone, and kopf lists again. That listing sends no DELETED
event for what was deleted meanwhile; the operator must notice it by itself.
"""

from __future__ import annotations

import re
import signal
import urllib.request

from kube.build import ensure_assets
from kube.controlplane import ControlPlane
from kube.realcluster import Kube, step, wait_for, workflow
from operator_harness import ROOT, free_port, operators


def running_workflows(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    found = re.search(r'^stepflow_workflows\{phase="Running"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_job_and_a_workflow_deleted_in_a_watch_gap_are_noticed(tmp_path):
    plane = ControlPlane(ensure_assets(), tmp_path / "plane").start()
    try:
        plane.kubectl("apply", "-k", str(ROOT / "deploy"))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/workflows.stepflow.dev")
        kube = Kube(plane, "default")
        port = free_port()
        with operators(plane.kubeconfig, tmp_path) as start:
            operator = start(env={"STEPFLOW_METRICS_PORT": str(port)})
            kube.create(workflow("held", [step("wait", hold=True)]))
            kube.create(workflow("doomed", [step("wait", hold=True)]))
            both = ("held", "doomed")
            wait_for(lambda: all(kube.step_phase(n, "wait") == "Running" for n in both), timeout=60)
            assert running_workflows(port) == 2

            operator.process.send_signal(signal.SIGSTOP)
            try:
                # Its watch connections end unread, so no DELETED event can wait in a socket.
                plane.restart_apiserver()
                kube.delete("jobs", "held-1-wait")
                kube.delete("workflows", "doomed")
                wait_for(lambda: not kube.get("jobs", "held-1-wait") and not kube.get("workflows", "doomed"))
                plane.compact_etcd()
                plane.restart_apiserver()  # the history of the deletions is gone from the cache too
            finally:
                operator.process.send_signal(signal.SIGCONT)

            status = kube.wait_phase("held", timeout=60)
            entry = status["steps"]["wait"]
            assert (entry["phase"], entry["reason"]) == ("Failed", "JobDeleted")
            wait_for(lambda: running_workflows(port) == 0, timeout=30,
                     message="the deleted Workflow is still in the operator's cache")
            assert "did not show" in operator.log()  # it was the re-list that found them
    finally:
        plane.stop()
