"""The operator's API writes per step, counted in the emulator's request log.

Examples, status, conditions and Events are proven on the real control plane
(tests/kube/test_e2e_scheduling.py, tests/kube/test_kubectl.py).
"""

from __future__ import annotations

import pytest

from operator_harness import load_example, wait_phase

pytestmark = pytest.mark.cluster(time_scale=0.5)


def test_api_writes_per_step_stay_within_budget(cluster, operator):
    doc = load_example("phase-groups.yaml")
    cluster.create(doc)
    wait_phase(cluster, "release-phases")
    writes = (cluster.requests.count(verb="create", resource="jobs")
              + cluster.requests.count(verb="patch", resource="workflows"))
    assert cluster.requests.count(verb="patch", resource="workflows", subresource=None) == 0
    assert writes / 6 <= 3, cluster.requests.summary()
