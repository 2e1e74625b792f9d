"""deploy/argocd/health.lua, run with lupa the way Argo CD runs it, against its fixtures."""

from __future__ import annotations

import pytest
import yaml

from manifests.checks import DEPLOY, HEALTH_LUA, ROOT, argocd_health, load_yaml_documents

FIXTURES = sorted((ROOT / "tests/fixtures/argocd").glob("*.yaml"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_health(path):
    (fixture,) = load_yaml_documents(path)
    assert argocd_health(fixture["object"]) == fixture["expected"]


def test_fixtures_cover_every_health_status():
    seen = {load_yaml_documents(p)[0]["expected"]["status"] for p in FIXTURES}
    assert seen == {"Healthy", "Degraded", "Suspended", "Progressing"}


def test_configmap_patch_registers_the_same_script():
    patch = yaml.safe_load((DEPLOY / "argocd" / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    key = "resource.customizations.health.stepflow.dev_Workflow"
    assert patch["data"][key] == HEALTH_LUA.read_text()
