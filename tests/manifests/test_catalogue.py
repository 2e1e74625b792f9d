"""deploy/catalogue/ (T6): an optional kustomize component of ClusterStepTypes, each valid, pinned,
locked down, reading its params safely, and documented param by param in docs/step-types.md.
The API server's verdict and the Jobs they make: tests/kube/test_e2e_catalogue.py; their scripts
run: tests/cli/test_catalogue_scripts.py."""

from __future__ import annotations

import re

import pytest
import yaml

from manifests.checks import DEPLOY, ROOT, example_errors
from stepflow.step_types import read_step_type

CATALOGUE = DEPLOY / "catalogue"
FILES = sorted(p for p in CATALOGUE.glob("*.yaml") if p.name != "kustomization.yaml")
TYPES = [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]
PINNED = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+$")  # an exact version, never latest or 1.34


def test_it_is_a_component_listing_every_file_and_no_install_includes_it():
    kustomization = yaml.safe_load((CATALOGUE / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert kustomization["kind"] == "Component"
    assert sorted(kustomization["resources"]) == [p.name for p in FILES]
    for install in (DEPLOY / "kustomization.yaml", DEPLOY / "namespaced" / "kustomization.yaml"):
        assert "catalogue" not in yaml.safe_dump(yaml.safe_load(install.read_text())), install


def test_the_catalogue_has_the_three_types_the_docs_promise():
    assert sorted(t["metadata"]["name"] for t in TYPES) == ["http-check", "kubectl-apply", "terraform"]
    assert {t["kind"] for t in TYPES} == {"ClusterStepType"}


@pytest.mark.parametrize("doc", TYPES, ids=lambda d: d["metadata"]["name"])
def test_each_type_is_valid_pinned_and_locked_down(doc):
    assert example_errors(doc) == []  # the CRD's schema
    found, errors = read_step_type(doc)  # and stepflow's own checks (T1)
    assert errors == [] and found is not None
    spec = doc["spec"]
    assert PINNED.match(spec["image"]), spec["image"]
    assert spec["description"] and all(p.get("description") for p in spec["params"])
    # The step, or the Workflow, says which account runs it (docs/step-types.md says which rights).
    assert "serviceAccountName" not in spec
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
    assert spec["timeoutSeconds"] > 0


@pytest.mark.parametrize("doc", TYPES, ids=lambda d: d["metadata"]["name"])
def test_each_script_reads_its_params_as_variables_never_as_text(doc):
    """In command, args and env the kubelet replaces $(NAME) with the value: in a script that
    would paste the value into shell code. And $$ would reach the shell as a single $."""
    script = doc["spec"]["script"]
    for param in doc["spec"]["params"]:
        assert f"$({param['name']})" not in script, param["name"]
        assert re.search(rf"\$\{{?{param['name']}(?![A-Za-z0-9_])", script), f"{param['name']} is never read"
    assert "$$" not in script


def test_the_docs_document_every_param_of_every_type():
    page = (ROOT / "docs" / "step-types.md").read_text()
    for doc in TYPES:
        name = doc["metadata"]["name"]
        section = page.split(f"### `{name}`", 1)
        assert len(section) == 2, f"docs/step-types.md has no section for {name}"
        body = section[1].split("\n### ", 1)[0]
        assert doc["spec"]["image"] in body, name
        for param in doc["spec"]["params"]:
            row = next((line for line in body.splitlines() if line.startswith(f"| `{param['name']}` |")),
                       None)
            assert row is not None, f"{name}: param {param['name']} is not in the docs' table"
            if "default" in param:
                assert f"`{param['default']}`" in row or (param["default"] == "" and "empty" in row), row
            else:
                assert "required" in row, row
