"""The real kubectl against the emulator while the operator runs: what users type."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from operator_harness import ROOT, wait_phase

pytestmark = [
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
    pytest.mark.cluster(time_scale=0.3),
]


def kubectl(cluster, *args: str) -> str:
    result = subprocess.run(["kubectl", f"--kubeconfig={cluster.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_apply_get_wait_and_yaml(cluster, operator):
    out = kubectl(cluster, "apply", "--validate=false", "-f", str(ROOT / "examples" / "simple-parallel.yaml"))
    assert "workflow.stepflow.dev/parallel-checks created" in out
    kubectl(cluster, "wait", "--for=condition=Complete", "--timeout=30s", "workflow/parallel-checks")

    table = kubectl(cluster, "get", "swf")
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "PHASE", "PROGRESS", "AGE", "DURATION"]
    assert row.split()[:3] == ["parallel-checks", "Succeeded", "4/4"]
    wide = kubectl(cluster, "get", "workflows", "-o", "wide")
    assert "MESSAGE" in wide.splitlines()[0] and "succeeded" in wide

    document = yaml.safe_load(kubectl(cluster, "get", "workflow", "parallel-checks", "-o", "yaml"))
    assert document["status"]["phase"] == "Succeeded"
    assert set(document["status"]["steps"]) == {"check-dns", "check-certs", "check-quota", "report"}
    assert wait_phase(cluster, "parallel-checks")["progress"] == "4/4"
