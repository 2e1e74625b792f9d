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


_IDENTITY = """
import getpass, json, os, sys
import kopf.cli
from kopf._core.engines import peering
kopf.cli.main = lambda args, **_: None
from stepflow.operator.main import run_operator
run_operator([])
def no_passwd_entry():
    raise KeyError("getpwuid(): uid not found: 1000770000")
getpass.getuser = no_passwd_entry
print(json.dumps([os.environ.get("POD_ID"), peering.detect_own_id(manual=False)]))
"""


@pytest.mark.parametrize("pod_id", [None, "stepflow-operator-7d9f-abcde"])
def test_the_operator_needs_no_passwd_entry_for_its_uid(pod_id):
    """A container's UID has no /etc/passwd entry (the image's 65532, OpenShift's arbitrary UIDs),
    and kopf names itself after the user unless POD_ID names it: the operator sets POD_ID, and
    keeps one that the deployment gives."""
    env = {k: v for k, v in os.environ.items() if k != "POD_ID"}
    if pod_id:
        env["POD_ID"] = pod_id
    out = subprocess.run([sys.executable, "-c", _IDENTITY], env=env, check=True, capture_output=True,
                         text=True).stdout
    set_to, kopf_identity = json.loads(out)
    assert set_to and kopf_identity == set_to
    if pod_id:
        assert set_to == pod_id


@pytest.mark.parametrize(("argv", "served"), [
    ([], []),
    (["-n", "team-a"], ["team-a"]),
    (["--namespace=team-a", "--namespace", "team-b", "-nteam-c"], ["team-a", "team-b", "team-c"]),
])
def test_the_namespaces_served_reach_the_operators_own_watches(argv, served):
    """Jobs and pods are watched outside kopf (child_watches.py), namespace by namespace."""
    from stepflow.operator.main import namespaces_of

    assert namespaces_of(argv) == served


@pytest.mark.parametrize("pattern", ["team-*", "!team-b", "a,b"])
def test_a_namespace_pattern_is_a_usage_error_naming_it(pattern):
    result = subprocess.run([sys.executable, "-m", "stepflow", "operator", "-n", pattern],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not patterns" in result.stderr and pattern in result.stderr
