"""``stepflow operator``'s options decide what its handlers watch, so they are read first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Runs in a fresh interpreter: the kopf handler registry is global and import-time.
_WATCHED = """
import json, sys
import kopf, kopf.cli
kopf.cli.main = lambda args, **_: print(json.dumps(args))
from stepflow.operator.main import run_operator
before = "stepflow.operator.handlers" in sys.modules
run_operator(sys.argv[1:])
import stepflow.operator.handlers  # what `kopf run -m stepflow.operator.handlers` imports
kinds = sorted(h.selector.any_name for h in kopf.get_default_registry()._watching.get_all_handlers())
print(json.dumps({"imported_before_options": before, "kinds": kinds}))
"""


def _watched(*argv: str) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if k != "STEPFLOW_CLUSTER_STEP_TYPES"}
    out = subprocess.run([sys.executable, "-c", _WATCHED, *argv], env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    return json.loads(out[0]), json.loads(out[1])


def test_all_namespaces_watches_cluster_step_types():
    args, watched = _watched()
    assert args[:4] == ["run", "-m", "stepflow.operator.handlers", "--standalone"]
    assert "--all-namespaces" in args
    assert "clustersteptypes" in watched["kinds"] and "steptypes" in watched["kinds"]


@pytest.mark.parametrize("scope", [["--namespace=team-a"], ["-n", "team-a"]])
def test_one_namespace_leaves_cluster_step_types_alone(scope):
    """A Role cannot grant the watch of a cluster-scoped kind: watching it anyway would log
    Forbidden forever (deploy/namespaced/)."""
    args, watched = _watched(*scope)
    assert "--all-namespaces" not in args
    assert not watched["imported_before_options"]
    assert "clustersteptypes" not in watched["kinds"] and "steptypes" in watched["kinds"]
