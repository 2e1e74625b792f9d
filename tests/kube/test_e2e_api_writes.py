"""The operator's API writes per step, counted in the real API server's audit log.

Examples, status, conditions and Events are proven in test_e2e_scheduling.py and
test_kubectl.py.
"""

from __future__ import annotations

from kube.fixtures import OPERATOR_USER
from operator_harness import load_example


def test_api_writes_per_step_stay_within_budget(kube, operator):
    doc = load_example("phase-groups.yaml")
    kube.create(doc)
    kube.wait_phase("release-phases")
    requests = kube.requests_by(OPERATOR_USER)
    writes = requests["create jobs"] + requests["patch workflows"] + requests["patch workflows/status"]
    assert requests["create jobs"] == 6  # one per step: the audit log saw every write
    assert requests["patch workflows"] == 0
    assert writes / 6 <= 3, requests
