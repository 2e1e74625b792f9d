"""Status fixtures for each workflow phase, read the way kstatus (Flux, kubectl wait) reads them."""

from __future__ import annotations

import pytest

from manifests.checks import ROOT, kstatus, load_yaml_documents

FIXTURES = sorted((ROOT / "tests/fixtures/status").glob("*.yaml"))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_kstatus(path):
    (fixture,) = load_yaml_documents(path)
    assert kstatus(fixture["object"]) == fixture["expected"]


def test_a_fixture_for_every_phase():
    phases = {load_yaml_documents(p)[0]["object"]["status"]["phase"] for p in FIXTURES}
    assert phases == {"Pending", "Running", "Suspended", "Succeeded", "Failed"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_conditions_follow_the_phase(path):
    """Ready/Complete once succeeded, Stalled/Failed once failed, Reconciling while running."""
    status = load_yaml_documents(path)[0]["object"]["status"]
    truth = {c["type"]: c["status"] == "True" for c in status["conditions"]}
    phase = status["phase"]
    assert truth == {
        "Ready": phase == "Succeeded", "Complete": phase == "Succeeded",
        "Stalled": phase == "Failed", "Failed": phase == "Failed",
        "Reconciling": phase in ("Pending", "Running", "Suspended"),
    }
