"""Reading YAML files: strict about duplicate keys, bounded in size and alias expansion, and every
problem a SpecError that names where it is."""

from __future__ import annotations

import time

import pytest

from stepflow import documents, spec
from stepflow.documents import iter_documents, read_documents
from stepflow.spec import SpecError


def test_the_spec_module_still_offers_the_readers():
    assert spec.read_documents is documents.read_documents and spec.iter_documents is iter_documents


def test_malformed_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("spec:\n  steps: [a, b\n  other: 1\n")
    with pytest.raises(SpecError) as info:
        read_documents(path)
    [error] = info.value.errors
    assert error.path.startswith("line ") and "column" in error.path
    assert error.message.startswith("malformed YAML")


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(SpecError, match="No such file"):
        read_documents(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(SpecError, match="contains no Workflow document"):
        read_documents(empty)


def test_duplicate_keys_are_an_error_not_a_silently_dropped_step_list(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("spec:\n  steps:\n    - name: a\n  steps:\n    - name: b\n")
    with pytest.raises(SpecError) as info:
        read_documents(path)
    [error] = info.value.errors
    assert error.path == "line 4, column 3" and "duplicate key 'steps'" in error.message


def test_multi_document_stream_skips_empty_documents():
    docs = list(iter_documents("a: 1\n---\n---\nb: 2\n"))
    assert docs == [{"a": 1}, {"b": 2}]


def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\nspec: {steps: *a8}\n"  # 546 bytes, 9^9 values expanded
    started = time.perf_counter()
    with pytest.raises(SpecError) as refused:
        list(iter_documents(text))
    assert time.perf_counter() - started < 5
    [error] = refused.value.errors
    assert "YAML aliases" in error.message and len(str(error)) < 200
