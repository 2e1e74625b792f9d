"""The record stage: what a status write sends."""

from __future__ import annotations

from stepflow.operator.record import merge_patch


def test_merge_patch_carries_only_changes_and_nulls_removals():
    old = {"phase": "Running", "steps": {"a": {"phase": "Running"}, "b": {"phase": "Pending"}},
           "message": "x"}
    new = {"phase": "Running", "steps": {"a": {"phase": "Succeeded"}, "b": {"phase": "Pending"}}}
    assert merge_patch(old, new) == {"steps": {"a": {"phase": "Succeeded"}}, "message": None}
    assert merge_patch(new, new) == {}
