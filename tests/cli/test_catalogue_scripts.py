"""The scripts of deploy/catalogue/, run by the local runner with `--types deploy/catalogue` as a
user would: http-check against a real local HTTP server with the real curl; kubectl-apply and
terraform against stand-ins for kubectl, git and terraform that record their arguments. A
param reaches the tool as one argument, exactly as given, whatever it holds."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stepflow.cli import main

CATALOGUE = Path(__file__).parents[2] / "deploy" / "catalogue"
HOSTILE = "https://example.com/app.yaml; touch pwned $(HOME) `id` $$"


def run_step(tmp_path: Path, capsys, step: dict) -> tuple[dict, str]:
    """Run a one-step workflow with the catalogue's types; its status entry and its log."""
    file = tmp_path / "wf.yaml"
    file.write_text(yaml.safe_dump({"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow",
                                    "metadata": {"name": "catalogue"}, "spec": {"steps": [step]}}))
    report, logs = tmp_path / "report.json", tmp_path / "logs"
    main(["run", str(file), "--types", str(CATALOGUE), "--report", str(report), "--logs", str(logs)])
    capsys.readouterr()
    entry = json.loads(report.read_text())["steps"][step["name"]]
    return entry, (logs / f"{step['name']}.log").read_text()


@pytest.fixture
def stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kubectl, git and terraform that write their arguments, one per line, to calls.log (git's
    checkout leaves an envs/prod folder)."""
    folder, calls = tmp_path / "bin", tmp_path / "calls.log"
    folder.mkdir()
    record = f'{{ echo "== $(basename "$0")"; printf "%s\\n" "$@"; }} >> {calls}\n'
    git = 'case "$1" in init) mkdir -p "$3";; checkout) mkdir -p envs/prod;; rev-parse) echo abc1234;; esac\n'
    for tool, extra in (("kubectl", ""), ("terraform", 'echo "terraform in $PWD"\n'), ("git", git)):
        (folder / tool).write_text(f"#!/bin/sh\n{record}{extra}")
        (folder / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return calls


def calls_of(calls: Path) -> list[list[str]]:
    if not calls.exists():
        return []
    found: list[list[str]] = []
    for line in calls.read_text().splitlines():
        if line.startswith("== "):
            found.append([line[3:]])
        else:
            found[-1].append(line)
    return found


# --- http-check --------------------------------------------------------------------------------

@pytest.fixture
def server() -> Iterator[tuple[str, list[int]]]:
    """A local HTTP server answering each request with the next status of a list (the last one
    repeats); yields its URL and the list."""
    answers: list[int] = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/healthz", answers
    httpd.shutdown()


def test_http_check_succeeds_once_the_endpoint_answers_as_expected(tmp_path, capsys, server):
    url, answers = server
    answers[:] = [503, 503, 200]
    entry, log = run_step(tmp_path, capsys, {"name": "check", "type": "http-check",
                                             "with": {"URL": url, "INTERVAL": "1", "TIMEOUT": "30"}})
    assert entry["phase"] == "Succeeded", log
    assert log.count("answered 503, not 200") == 2
    assert log.splitlines()[-1] == f"{url} answered 200"


def test_http_check_fails_at_its_timeout_when_nothing_answers(tmp_path, capsys):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    entry, log = run_step(tmp_path, capsys, {"name": "check", "type": "http-check", "with": {
        "URL": f"http://127.0.0.1:{port}/", "TIMEOUT": "2", "INTERVAL": "1"}})
    assert entry["phase"] == "Failed" and entry["exitCode"] == 1
    assert "did not answer 200 within 2s" in log
    assert time.monotonic() - started < 15


def test_http_check_refuses_what_is_not_http_and_what_is_not_a_number(tmp_path, capsys):
    entry, log = run_step(tmp_path, capsys, {"name": "check", "type": "http-check", "with": {
        "URL": "file:///etc/passwd", "TIMEOUT": "0"}})
    assert "root:" not in log  # curl may fetch http and https only
    assert entry["phase"] == "Failed" and "did not answer 200 within 0s (last answer: 000)" in log
    entry, log = run_step(tmp_path, capsys, {"name": "check", "type": "http-check", "with": {
        "URL": "http://127.0.0.1/", "EXPECTED": "000"}})  # no answer at all is never an answer
    assert entry["exitCode"] == 2 and "EXPECTED must be an HTTP status code" in log
    entry, log = run_step(tmp_path, capsys, {"name": "check", "type": "http-check", "with": {
        "URL": "http://127.0.0.1/", "TIMEOUT": "1; reboot"}})
    assert entry["exitCode"] == 2 and "must be whole numbers" in log


# --- kubectl-apply and terraform, against stand-ins ---------------------------------------------

def test_kubectl_apply_passes_each_param_as_one_argument(tmp_path, capsys, stubs):
    entry, log = run_step(tmp_path, capsys, {"name": "apply", "type": "kubectl-apply", "with": {
        "MANIFESTS": HOSTILE, "KUSTOMIZE": "true", "NAMESPACE": "shop", "DRY_RUN": "server"}})
    assert entry["phase"] == "Succeeded", log
    assert calls_of(stubs) == [["kubectl", "apply", "--kustomize", HOSTILE, "--namespace", "shop",
                                "--dry-run=server"]]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_kubectl_apply_defaults_to_a_file_in_the_workflows_namespace(tmp_path, capsys, stubs):
    entry, _ = run_step(tmp_path, capsys, {"name": "apply", "type": "kubectl-apply",
                                           "with": {"MANIFESTS": "https://example.com/app.yaml"}})
    assert entry["phase"] == "Succeeded"
    assert calls_of(stubs) == [["kubectl", "apply", "--filename", "https://example.com/app.yaml",
                                "--dry-run=none"]]


def test_terraform_clones_the_ref_then_inits_and_applies_in_the_folder(tmp_path, capsys, stubs):
    entry, log = run_step(tmp_path, capsys, {"name": "infra", "type": "terraform", "with": {
        "REPO": "https://github.com/example/infra.git", "REF": "v2.0.0", "DIR": "envs/prod",
        "COMMAND": "apply", "VAR_FILE": "prod.tfvars"}})
    assert entry["phase"] == "Succeeded", log
    calls = calls_of(stubs)
    clone = calls[0][3]  # a fresh folder of its own
    assert calls == [
        ["git", "init", "--quiet", clone],
        ["git", "remote", "add", "origin", "https://github.com/example/infra.git"],
        ["git", "fetch", "--quiet", "--depth", "1", "origin", "v2.0.0"],
        ["git", "checkout", "--quiet", "FETCH_HEAD"],
        ["git", "rev-parse", "--short", "HEAD"],
        ["terraform", "init", "-input=false"],
        ["terraform", "apply", "-input=false", "-var-file=prod.tfvars", "-auto-approve"],
    ]
    assert "https://github.com/example/infra.git at v2.0.0 (abc1234), in envs/prod: terraform apply" in log
    assert log.count(f"terraform in {clone}/envs/prod") == 2


def test_terraform_plans_by_default_at_main(tmp_path, capsys, stubs):
    entry, log = run_step(tmp_path, capsys, {"name": "infra", "type": "terraform",
                                             "with": {"REPO": "git@example.com:org/infra.git"}})
    assert entry["phase"] == "Succeeded", log
    calls = calls_of(stubs)
    assert ["git", "fetch", "--quiet", "--depth", "1", "origin", "main"] in calls
    assert calls[-1] == ["terraform", "plan", "-input=false"]


def test_terraform_never_hands_git_an_option(tmp_path, capsys, stubs):
    entry, log = run_step(tmp_path, capsys, {"name": "infra", "type": "terraform", "with": {
        "REPO": "https://example.com/i.git", "REF": "--upload-pack=touch pwned"}})
    assert entry["phase"] == "Failed" and entry["exitCode"] == 2
    assert "REPO and REF must be set and not start with '-'" in log
    assert calls_of(stubs) == []
