"""``stepflow types``: the types a workflow uses, where each came from, and with what params."""

from __future__ import annotations

import yaml

from stepflow.cli import main

TITLE = "\x1b]0;pwned\x07"  # a terminal would obey it: it sets the window title


def test_types_lists_each_type_with_its_source_steps_and_params_and_escapes_what_a_file_says(
        capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    docs = [
        {"apiVersion": "stepflow.dev/v1alpha1", "kind": "StepType", "metadata": {"name": "greet"},
         "spec": {"image": "alpine:3.20", "script": 'echo "$WHO"', "params": [{"name": "WHO"}]}},
        {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
         "spec": {"steps": [{"name": "a", "type": "greet", "with": {"WHO": f"x {TITLE} y"}},
                            {"name": "b", "type": "label", "script": "true", "image": "x"}]}},
    ]
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert main(["types", str(path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "greet" in line)
    assert "StepType" in row and "(document 1)" in row and "WHO=x \\x1b]0;pwned\\x07 y" in row
    assert "\x1b" not in out and "\x07" not in out
    assert "(label)" in next(line for line in out.splitlines() if " label " in line)
