"""Run the real ``stepflow operator`` as a subprocess against the real control plane tier.

A subprocess, not a thread: killing it mid-run is a real crash, and a
restart is a cold start with empty caches, exactly what restart safety
has to survive.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from simulate import max_overlap as max_overlap  # the e2e tests measure overlap the same way

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM, and SIGKILL if it does not exit within ``timeout``: a test's helper processes."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class OperatorProcess:
    """``stepflow operator`` in a subprocess, logged in with the kubeconfig at ``kubeconfig``."""

    def __init__(self, kubeconfig: Path, log_path: Path, *args: str, env: dict[str, str] | None = None,
                 cwd: Path = ROOT):
        self.cwd = cwd  # another checkout's root (with PYTHONPATH in env): an older release
        self.kubeconfig = Path(kubeconfig)
        self.log_path = log_path
        self.args = list(args)
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "STEPFLOW_METRICS_PORT": "0",
                    **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepflow", "operator", *self.args], env=self.env,
            stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd)
        return self

    def kill(self) -> None:
        """A crash: SIGKILL, no cleanup handlers."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tracebacks(self) -> list[str]:
        """Every Python traceback the operator logged: each one is a bug, even if the test passed."""
        blocks = re.split(r"(?m)^(?=Traceback \(most recent call last\):)", self.log())
        return [block[:3000] for block in blocks[1:]]


@contextlib.contextmanager
def operators(default: Path, directory: Path,
              refused: tuple[str, ...] = ()) -> Iterator[Callable[..., OperatorProcess]]:
    """A ``start(*args, env=..., kubeconfig=...)`` for operator subprocesses, logged in with the
    ``default`` kubeconfig unless told otherwise, all stopped when the block ends. A Python
    traceback in any operator's log fails the test, and so does a line with any of the
    ``refused`` words."""
    started: list[OperatorProcess] = []

    def start(*args: str, env: dict[str, str] | None = None,
              kubeconfig: Path | None = None) -> OperatorProcess:
        process = OperatorProcess(kubeconfig or default, directory / f"operator-{len(started)}.log", *args,
                                  env=env).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()
    tracebacks = [t for process in started for t in process.tracebacks()]
    assert not tracebacks, "the operator logged a traceback:\n" + "\n".join(tracebacks)
    lines = [line for process in started for line in process.log().splitlines()
             if any(word in line for word in refused)]
    assert not lines, "the operator logged:\n" + "\n".join(lines[:10])


def load_example(name: str, namespace: str = "default") -> dict[str, Any]:
    """The Workflow of an example (a file may hold the StepTypes it uses too)."""
    docs = [d for d in yaml.safe_load_all((ROOT / "examples" / name).read_text()) if d]
    (doc,) = [d for d in docs if d.get("kind") == "Workflow"]
    doc["metadata"]["namespace"] = namespace
    return doc


def workflow(name: str, steps: Iterable[dict[str, Any]], namespace: str = "default",
             **spec: Any) -> dict[str, Any]:
    spec.setdefault("defaults", {"image": "alpine:3.20"})
    return {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {**spec, "steps": list(steps)}}
