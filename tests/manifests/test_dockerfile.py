"""The operator image: hadolint-clean, multi-stage, non-root, the operator as entrypoint."""

from __future__ import annotations

import json
import re

from manifests.checks import ROOT, hadolint_errors

DOCKERFILE = ROOT / "Dockerfile"


def instructions():
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [line.split(None, 1) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_hadolint_passes():
    assert hadolint_errors(DOCKERFILE) == []


def test_ignored_rules_carry_a_reason():
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"hadolint ignore=\S+\s+\S", line), line


def test_image_shape():
    steps = instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    for image in froms:
        assert re.match(r"python:\d+\.\d+\.\d+-slim-\w+", image), image
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    user = [args for op, args in final if op == "USER"]
    assert user and re.fullmatch(r"[1-9]\d*:[1-9]\d*", user[-1].strip())
    assert any(op == "COPY" and "--from=" in args for op, args in final)
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["stepflow", "operator"]
    assert json.loads(dict(final)["CMD"]) == [
        "--all-namespaces", "--standalone", "--liveness=http://0.0.0.0:8080/healthz"]
    assert dict(final)["EXPOSE"].split() == ["8080", "9090"]
    assert "[test]" not in DOCKERFILE.read_text() and "pytest" not in DOCKERFILE.read_text()


def test_dockerignore_keeps_the_context_small():
    """Everything is ignored but what the build copies: no .venv, .git, tests or logs."""
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)
