"""pytest plugin: `pytest_plugins = ["cluster.fixtures"]` in tests/conftest.py.

    def test_something(cluster):                       # fresh emulator, Workflow CRD loaded
        cluster.jobs.when(Outcome(exit_code=3), step="build")
        ... cluster.kubeconfig ...

    @pytest.mark.cluster(time_scale=0.05, auto_namespaces=False)   # Cluster(...) options
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Cluster
from .crds import stepflow_crds


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster(**options): options for the `cluster` fixture")


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """A fresh emulator per test; its kubeconfig is `cluster.kubeconfig`. The test errors at
    teardown if the emulator itself crashed on a request (see `cluster.failures`)."""
    marker = request.node.get_closest_marker("cluster")
    options = dict(marker.kwargs) if marker else {}
    options.setdefault("crds", stepflow_crds())
    with Cluster(kubeconfig=tmp_path / "kubeconfig", **options) as emulator:
        yield emulator
    assert not emulator.failures, "emulator failures:\n" + "\n".join(emulator.failures)


@pytest.fixture
def kubeconfig_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KUBECONFIG pointing at the emulator, for code that reads the environment."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    return cluster.kubeconfig
