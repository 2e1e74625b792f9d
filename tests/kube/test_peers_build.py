"""The peers' place on the tier (tests/kube/peers.py), checked without building or starting
anything: their wrappers never rebuild the control plane, their Stages and audit rule parse."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from kube import build
from kube.controlplane import ControlPlane
from kube.peers import ARGO, PEER_STAGES, PEERS, PeerControlPlane


def test_the_peers_wrappers_stay_out_of_the_control_planes_digest(tmp_path, monkeypatch):
    gomod = tmp_path / "gomod"
    shutil.copytree(build.GOMOD, gomod)
    monkeypatch.setattr(build, "GOMOD", gomod)
    before = build._inputs_digest()
    for peer in PEERS:
        (gomod / peer.name / "go.mod").write_text("module changed\n")
    assert build._inputs_digest() == before, "a peer's wrapper would rebuild the control plane"
    (gomod / "etcd" / "go.mod").write_text("module changed\n")
    assert build._inputs_digest() != before


def test_each_wrapper_pins_its_controller_as_a_tool():
    for peer in PEERS:
        gomod = (build.GOMOD / peer.name / "go.mod").read_text()
        assert f"tool {peer.package}\n" in gomod
        assert re.search(rf"^\s*{re.escape(peer.module)} {re.escape(peer.version)}\b", gomod, re.M)
        assert (build.GOMOD / peer.name / "go.sum").stat().st_size > 0
    argo = (build.GOMOD / ARGO.name / "go.mod").read_text()
    assert "replace github.com/olekukonko/tablewriter => github.com/olekukonko/tablewriter v0.0.5" in argo


def test_peer_stages_end_only_the_peers_pods_in_one_update_with_no_message():
    stages = [d for d in yaml.safe_load_all(PEER_STAGES.read_text()) if d]
    assert [s["kind"] for s in stages] == ["Stage"]
    spec = stages[0]["spec"]
    owner = next(e for e in spec["selector"]["matchExpressions"] if "ownerReferences" in e["key"])
    assert owner == {"key": ".metadata.ownerReferences.[].kind", "operator": "In",
                     "values": ["Workflow", "TaskRun"]}
    template = spec["next"]["statusTemplate"]
    assert "message" not in template and "phase: Succeeded" in template
    assert template.count("{{ range .spec.containers }}") == 1  # every container, one update


def test_the_peer_control_plane_adds_stages_and_the_pod_audit_rules(tmp_path):
    plane = PeerControlPlane(Path("/nonexistent"), tmp_path)
    documents = [d for d in yaml.safe_load_all(plane.kwok_config().read_text()) if d]
    names = [(d.get("metadata") or {}).get("name") for d in documents]
    assert "pod-succeeded" in names and "peer-pod-succeeded" in names
    rules = yaml.safe_load(plane.audit_policy().read_text())["rules"]
    assert rules[0] == {"level": "Metadata", "userGroups": ["system:serviceaccounts"]}
    assert {"group": "", "resources": ["pods/status"]} in rules[1]["resources"]
    admin = {(r["level"], v, g["resources"][0]) for r in rules if r.get("users") == ["stepflow-test-admin"]
             for v in r["verbs"] for g in r["resources"]}
    # the phases of a step (benchmarks/peer_phases.py): the scheduler's binding, the Job
    # controller's create with its request (its generateName ties the pod to its Job)
    assert {("Metadata", "create", "pods/binding"), ("Request", "create", "pods")} <= admin
    assert rules[-1] == {"level": "None"}


def test_the_peer_control_plane_never_rotates_its_audit_log(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(ControlPlane, "spawn", lambda self, name, args: seen.setdefault(name, list(args)))
    plane = PeerControlPlane(Path("/nonexistent"), tmp_path)
    plane.spawn("kube-apiserver", ["--v=1"])
    plane.spawn("etcd", ["--log-level=warn"])
    assert seen == {"kube-apiserver": ["--v=1", "--audit-log-maxsize=1000000"], "etcd": ["--log-level=warn"]}
