"""The Helm chart (deploy/helm/stepflow/) through the real ``helm``, built from the Go module proxy
into the tier's cache (tests/kube/build.py, ``make kube-assets``).

Helm is run with its config, cache and data folders in a folder of the test run's own, so that a
user's repositories and plugins play no part and nothing is written to their home.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kube.build import ensure_helm
from manifests.checks import DEPLOY

CHART = DEPLOY / "helm" / "stepflow"
# Labels Helm charts carry by convention and kustomize's base does not: ignored when the two are
# compared, and only these.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version"}


@cache
def _home() -> Path:
    return Path(tempfile.mkdtemp(prefix="stepflow-helm-home."))


def helm_env() -> dict[str, str]:
    home = _home()
    return {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CONFIG", "CACHE", "DATA")}


def helm(*args: str, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``helm ARGS``; with ``check``, a non-zero exit raises with Helm's own words."""
    result = subprocess.run([str(ensure_helm()), *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **helm_env(), **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def values_args(values: dict[str, Any] | None, folder: Path) -> list[str]:
    """``--values FILE`` for ``values`` (JSON is YAML), or nothing."""
    if not values:
        return []
    path = Path(tempfile.mkstemp(suffix=".json", dir=folder)[1])
    path.write_text(json.dumps(values))
    return ["--values", str(path)]


def template(values: dict[str, Any] | None = None, namespace: str = "stepflow-system",
             crds: bool = False) -> list[dict[str, Any]]:
    """The objects ``helm template`` renders for ``values``, in ``namespace``."""
    out = helm("template", "stepflow", str(CHART), "--namespace", namespace,
               *(["--include-crds"] if crds else []), *values_args(values, _home())).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with Helm's conventional labels taken off its metadata (not off selectors)."""
    copy = json.loads(json.dumps(obj))
    labels = copy["metadata"].get("labels") or {}
    for label in HELM_LABELS:
        labels.pop(label, None)
    return copy
