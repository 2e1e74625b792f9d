"""What users type against a real API server while the operator runs: kubectl, kstatus (the
library Flux and kubectl tooling judge health with), and stepflow's own cluster commands."""

from __future__ import annotations

import json
import subprocess

from kube.controlplane import POD_LOG
from kube.realcluster import step, wait_for, workflow
from operator_harness import ROOT


def apply(kube, doc):
    return kube.kubectl("apply", "-f", "-", input=json.dumps(doc))


def test_apply_get_wait_and_describe(kube, operator):
    out = kube.kubectl("apply", "-f", str(ROOT / "examples" / "simple-parallel.yaml"))
    assert "workflow.stepflow.dev/parallel-checks created" in out
    kube.kubectl("wait", "--for=condition=Complete", "--timeout=60s", "workflow/parallel-checks")

    header, row = kube.kubectl("get", "swf").splitlines()[:2]
    assert header.split()[:5] == ["NAME", "PHASE", "PROGRESS", "AGE", "DURATION"]
    assert row.split()[:3] == ["parallel-checks", "Succeeded", "4/4"]
    wide = kube.kubectl("get", "workflows", "-o", "wide")
    assert "MESSAGE" in wide.splitlines()[0] and "succeeded" in wide

    wait_for(lambda: "WorkflowSucceeded" in kube.kubectl("describe", "workflow", "parallel-checks"))
    described = kube.kubectl("describe", "workflow", "parallel-checks")
    assert '"report" (notify)' in described and "started" in described and "succeeded" in described
    assert "parallel-checks-1-report" in described


def test_kubectl_wait_for_failed(kube, operator):
    apply(kube, workflow("red", [step("a", exit_code=4)]))
    kube.kubectl("wait", "--for=condition=Failed", "--timeout=60s", "workflow/red")
    assert kube.status("red")["steps"]["a"]["exitCode"] == 4


def kstatus(kube, name):
    live = kube.kubectl("get", "workflow", name, "-o", "json")
    result = subprocess.run([kube.plane.binary("kstatus")], input=live, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[1]


def test_kstatus_reads_running_succeeded_and_failed_workflows(kube, operator):
    apply(kube, workflow("busy", [step("a", hold=True)]))
    wait_for(lambda: kube.step_phase("busy", "a") == "Running")
    assert kstatus(kube, "busy") == "InProgress"
    kube.release("busy-1-a")
    kube.wait_phase("busy")
    assert kstatus(kube, "busy") == "Current"

    apply(kube, workflow("broken", [step("a", exit_code=1)]))
    kube.wait_phase("broken")
    assert kstatus(kube, "broken") == "Failed"


def test_the_stepflow_cluster_commands(kube, operator):
    apply(kube, workflow("cli", [step("build"), step("test", exit_code=2, message="2 tests failed")]))
    kube.wait_phase("cli")
    listing = kube.stepflow("list")
    assert "cli" in listing and "Failed" in listing and "1/2" not in listing and "2/2" in listing
    status = kube.stepflow("status", "cli")
    assert "build" in status and "Succeeded" in status and "2 tests failed" in status
    timeline = kube.stepflow("timeline", "cli")
    assert "build" in timeline and "test" in timeline
    logs = kube.stepflow("logs", "cli", "build")
    assert POD_LOG.splitlines()[0] in logs  # served by kwok's kubelet API through the API server
    assert POD_LOG.splitlines()[0] in kube.kubectl("logs", "job/cli-1-build")
