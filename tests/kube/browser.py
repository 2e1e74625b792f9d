"""``stepflow ui`` in a subprocess and Debian's Chromium driven by Playwright, for the browser tests
and benchmarks/ui_render.py.

Playwright's own browser download cannot work on these machines, so Chromium is the system's
(``apt-get install chromium``; .ci/run installs it), launched through ``executable_path``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kube.controlplane import ControlPlane
from operator_harness import ROOT, stop_process
from stepflow.status import rfc3339

# Without the background-networking flags Chromium calls Google's hosts at start, which this
# machine's closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
VIEWER_RULES = [
    {"apiGroups": ["stepflow.dev"], "resources": ["workflows"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
]
READ_VERBS = {"get", "list", "watch"}


def grouped_workflow(name: str, size: int, group_size: int = 10) -> dict[str, Any]:
    """``size`` steps in groups of ``group_size``: a graph as tall as it is wide at 1,000 steps."""
    steps = [{"name": f"s{i}", "script": "true", "parallelGroup": i // group_size + 1} for i in range(size)]
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"defaults": {"image": "alpine:3.20"}, "steps": steps},
    }


def pending_status(size: int, group_size: int = 10) -> dict[str, Any]:
    """The status of a run that has just started, written without an operator: the UI alone is
    under test. No ``progress``, so that it needs no updating as steps change."""
    steps = {f"s{i}": {"index": i, "group": i // group_size, "phase": "Pending"} for i in range(size)}
    return {"phase": "Running", "startedAt": rfc3339(time.time()), "steps": steps}


def chromium() -> str:
    """The system Chromium, or a failure that says how to get it (never a silent skip)."""
    found = (
        os.environ.get("STEPFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        raise RuntimeError(
            "the browser tests need Debian's Chromium: apt-get install chromium "
            "(or set STEPFLOW_CHROMIUM to a Chromium binary)"
        )
    return found


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


class PageWatch:
    """What a page did that a user would call broken: console errors, uncaught exceptions, and
    requests to anywhere but the UI's own loopback address."""

    def __init__(self, page: Any):
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def foreign_requests(self) -> list[str]:
        return [
            url
            for url in self.requests
            if not url.startswith(("data:", "blob:")) and urlparse(url).hostname != "127.0.0.1"
        ]


class UiServer:
    """``stepflow ui ARGS`` as a user starts it; ``url`` is what it printed."""

    def __init__(self, kubeconfig: Path, log_path: Path, *args: str):
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepflow", "ui", "--kubeconfig", str(kubeconfig), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=log_path.open("wb"),
            cwd=ROOT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not found:
            self.stop()
            raise RuntimeError(f"stepflow ui printed {line!r}; its log:\n{self.log()}")
        self.url = found.group(0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


@contextmanager
def ui_server(kubeconfig: Path, log_path: Path, *args: str) -> Iterator[UiServer]:
    """A UI server that must stop on SIGTERM and must not log a traceback."""
    server = UiServer(kubeconfig, log_path, *args)
    try:
        yield server
    finally:
        server.stop()
    assert server.process.returncode == 0, f"stepflow ui exited {server.process.returncode}:\n{server.log()}"
    assert "Traceback" not in server.log(), server.log()


def viewer_kubeconfig(plane: ControlPlane, namespace: str, name: str, path: Path) -> Path:
    """A ServiceAccount that may only read Workflows and pod logs, in every namespace."""
    plane.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
    )
    plane.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": VIEWER_RULES,
        }
    )
    plane.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    return plane.token_kubeconfig(name, namespace, path)


def verbs_of(plane: ControlPlane, namespace: str, account: str) -> set[str]:
    """Every verb the account used, from the API server's audit log (written within a second)."""
    time.sleep(1.5)
    user = f"system:serviceaccount:{namespace}:{account}"
    return {e["verb"] for e in plane.audit_events() if e.get("user", {}).get("username") == user}
