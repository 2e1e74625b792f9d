"""``stepflow ui`` as a command: what a user sees when the port or the API server is not there.

Mirror: ``operator/stepflow/cli/ui.py``. The pages themselves are tested in a real browser
against a real API server (tests/kube/test_e2e_ui.py).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from operator_harness import ROOT


def unreachable_kubeconfig(path: Path) -> Path:
    """A kubeconfig whose API server refuses connections (nothing listens on port 9)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team"}}],
            }
        )
    )
    return path


def ui(kubeconfig: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stepflow", "ui", "--kubeconfig", str(kubeconfig), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = ui(unreachable_kubeconfig(tmp_path / "kc"), "--port", str(taken.getsockname()[1]))
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert re.fullmatch(r"error: cannot listen on 127\.0\.0\.1:\d+: .+\n", stderr), stderr


def test_an_unreachable_api_server_is_reported_and_the_server_keeps_serving(tmp_path):
    process = ui(unreachable_kubeconfig(tmp_path / "kc"), "--port", "0")
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        assert "namespace team" in line and "read-only" in line  # the context's namespace
        time.sleep(1)
        with urllib.request.urlopen(url + "api/meta", timeout=10) as response:
            meta = json.load(response)
        assert meta["scope"] == "team" and meta["connected"] is False
        with urllib.request.urlopen(url, timeout=10) as response:
            assert "stepflow" in response.read().decode()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "listing again" in stderr and "Traceback" not in stderr, stderr
