"""Fixtures of the real control plane tier (tests/kube/README.md), a plugin of tests/conftest.py
so that the CLI's tests share the session's control plane too.

One control plane serves the whole session; each test gets a namespace of its own and its own
``stepflow operator`` subprocess, logged in with a token of deploy/'s ServiceAccount, so every
call it makes is judged by the real RBAC authorizer against the ClusterRole in deploy/. A test
that needs the API server to misbehave starts its operator behind the fault proxy instead.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.build import BuildError, ensure_assets
from kube.controlplane import ControlPlane
from kube.faultproxy import FaultProxy
from kube.realcluster import CHAOS_FIGURES, Kube, StatusRecorder, wait_for
from operator_harness import ROOT, OperatorProcess, operators
from status_checks import order_violations, status_inconsistencies

HERE = Path(__file__).resolve().parent

OPERATOR_NAMESPACE = "stepflow-system"
OPERATOR_ACCOUNT = "stepflow-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
CRDS = ("workflows.stepflow.dev", "steppools.stepflow.dev", "steptypes.stepflow.dev",
        "clustersteptypes.stepflow.dev")


UNUSED_PERMISSIONS: list[str] = []  # filled when the control plane stops, printed in the summary


def permissions_unused(plane: ControlPlane) -> list[str]:
    """deploy/'s ClusterRole rules that the operator's account never exercised in this run,
    from the API server's audit log."""
    used = set()
    for event in plane.audit_events():
        if event.get("user", {}).get("username") == OPERATOR_USER and "objectRef" in event:
            ref = event["objectRef"]
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            used.add((ref.get("apiGroup", ""), resource, event["verb"]))
    role = yaml.safe_load((ROOT / "deploy" / "manifests" / "clusterrole.yaml").read_text())
    unused = []
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    if (group, resource, verb) not in used:
                        unused.append(f"{verb} {resource}" + (f".{group}" if group else ""))
    return unused


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, value in CHAOS_FIGURES.items():
        terminalreporter.write_line(f"chaos: {name}: {value}")
    if UNUSED_PERMISSIONS:
        terminalreporter.write_line(
            "deploy/ ClusterRole permissions no real-tier test used: " + ", ".join(UNUSED_PERMISSIONS)
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents or "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The real control plane, with deploy/ installed by the real ``kubectl apply -k``."""
    try:
        assets = ensure_assets()
    except BuildError as error:  # never a silent skip: the tier is part of the suite
        pytest.fail(f"the real control plane tier cannot be built: {error}", pytrace=False)
    plane = ControlPlane(assets, tmp_path_factory.mktemp("kube")).start()
    try:
        plane.kubectl("apply", "-k", str(ROOT / "deploy"))
        plane.wait_established(*CRDS)
        # Established is not yet serving: until a new resource's watch cache is filled, requests
        # are answered 429 "storage is (re)initializing". kubectl waits that out (Retry-After).
        plane.kubectl("get", ",".join(CRDS), "-A", "--output=name")
        yield plane
        time.sleep(1.5)  # the audit log is written in batches of up to a second
        UNUSED_PERMISSIONS.extend(permissions_unused(plane))
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.token_kubeconfig(
        OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, control_plane.workdir / "operator.kubeconfig"
    )


def namespace_for(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    return f"{name}-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6]}"


@pytest.fixture
def kube(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[Kube]:
    """A fresh namespace of the real cluster; deleted (with everything in it) afterwards."""
    namespace = namespace_for(request)
    kube = Kube(control_plane, namespace)
    labels = getattr(request, "param", None) or {}
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}})
    # Pods cannot be created before the ServiceAccount admission plugin finds the default account.
    wait_for(
        lambda: kube.get("serviceaccounts", "default"), message=f"no default ServiceAccount in {namespace}"
    )
    with StatusRecorder(
        kube, lambda obj: status_inconsistencies(obj["status"]) + order_violations(obj)
    ) as seen:
        kube.recorder = seen
        yield kube
    kube.delete("namespaces", namespace)
    assert not seen.problems, "inconsistent status published:\n" + "\n".join(seen.problems)


@pytest.fixture
def start_operator(operator_kubeconfig: Path, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """Start ``stepflow operator [args]`` as deploy/'s ServiceAccount; stopped at teardown. A
    traceback in its log fails the test, and so does a line saying deploy/'s RBAC refused it."""
    with operators(operator_kubeconfig, tmp_path, refused=("forbidden",)) as start:
        yield start


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


@pytest.fixture
def fault_proxy(control_plane: ControlPlane) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's API server (tests/kube/faultproxy.py)."""
    with FaultProxy(control_plane.url, control_plane.pki / "ca.crt") as proxy:
        yield proxy


@pytest.fixture
def start_proxied(
    fault_proxy: FaultProxy, operator_kubeconfig: Path, kube: Kube, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """``start_operator``, but the operator reaches the API server through the fault proxy, and
    serves only the test's namespace: what the proxy counts is this test's traffic alone. Its
    operators stop before the proxy does."""
    proxied = fault_proxy.kubeconfig(operator_kubeconfig, tmp_path / "proxied.kubeconfig")
    (tmp_path / "proxied").mkdir()
    with operators(proxied, tmp_path / "proxied", refused=("forbidden",)) as start:
        yield lambda *args, **kwargs: start(f"--namespace={kube.namespace}", *args, **kwargs)
