"""The docs site's generated parts and promises: the field reference covers every field of the
CRDs, the examples' index lists every example with what it shows and what to run, every complete
Workflow shown in the docs is valid, and the figures writer records where a table came from.

Mirror: ``docs/hooks/`` and ``benchmarks/figures.py``. ``make test`` also builds the whole site
with ``mkdocs build --strict``, which fails on a broken link, anchor or include.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from rich.table import Table

from stepflow.cluster_refusals import cluster_errors
from stepflow.plan import compile_workflow
from stepflow.spec import SpecError
from stepflow.step_types import Catalog, is_step_type, read_step_type

ROOT = Path(__file__).resolve().parents[1]
CRDS = sorted((ROOT / "deploy" / "crds").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
PAGES = sorted((ROOT / "docs").glob("*.md"))
INTENDED_INVALID = "# broken.yaml"  # the validation page's example of what validate refuses


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


crd_reference = load(ROOT / "docs" / "hooks" / "crd_reference.py")
examples_index = load(ROOT / "docs" / "hooks" / "examples_index.py")
figures = load(ROOT / "benchmarks" / "figures.py")
figures_check = load(ROOT / "docs" / "hooks" / "figures_check.py")


# --- the field reference -----------------------------------------------------------------------

def schema_paths(schema: dict[str, Any], path: str) -> Iterator[str]:
    """Every field path of a schema, as the reference writes them (`spec.steps[].name`)."""
    for name, child in (schema.get("properties") or {}).items():
        yield f"{path}.{name}"
        yield from schema_paths(child, f"{path}.{name}")
    items = schema.get("items") or {}
    if items.get("properties"):
        yield from schema_paths(items, f"{path}[]")
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and values.get("properties"):
        yield from schema_paths(values, f"{path}.<name>")


def documented_paths(markdown: str) -> set[str]:
    """The field paths the generated Markdown documents, following its "Same fields as" links."""
    sections: dict[str, list[str]] = {}
    aliases: dict[str, str] = {}
    current = ""
    for line in markdown.splitlines():
        heading = re.match(r"^### `([^`]+)`", line)
        if heading:
            current = heading.group(1)
            sections[current] = []
            continue
        row = re.match(r"^\| `([^`]+)` \|", line)
        if row:
            sections[current].append(row.group(1))
            same = re.search(r"Same fields as: \[`([^`]+)`\]", line)
            if same:
                aliases[f"{current}.{row.group(1)}"] = same.group(1)
    found: set[str] = set()

    def visit(section: str, prefix: str, depth: int = 0) -> None:
        assert depth < 20, f"alias loop at {section}"
        for field in sections[section]:
            path = f"{prefix}.{field}"
            found.add(path)
            for suffix in ("", "[]", ".<name>"):
                if f"{section}.{field}{suffix}" in sections:
                    visit(f"{section}.{field}{suffix}", path + suffix, depth + 1)
            target = aliases.get(f"{section}.{field}")
            if target is not None:
                suffix = next((s for s in ("[]", ".<name>") if target.endswith(s)), "")
                visit(target, path + suffix, depth + 1)

    for top in ("spec", "status"):
        if top in sections:
            found.add(top)
            visit(top, top)
    return found


@pytest.mark.parametrize("crd", CRDS, ids=lambda p: p.name)
def test_the_reference_documents_every_field_of_the_crd(crd):
    schema = next(v for v in yaml.safe_load(crd.read_text())["spec"]["versions"] if v.get("storage"))
    root = schema["schema"]["openAPIV3Schema"]
    expected = {p for top in ("spec", "status") if top in root["properties"]
                for p in [top, *schema_paths(root["properties"][top], top)]}
    documented = documented_paths(crd_reference.reference(crd))
    assert expected - documented == set()
    assert documented - expected == set()


def test_the_reference_shows_types_defaults_and_constraints_from_the_schema():
    markdown = crd_reference.reference(ROOT / "deploy" / "crds" / "workflows.stepflow.dev.yaml")
    row = next(line for line in markdown.splitlines() if line.startswith("| `maxConcurrency` |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[1:4] == ["integer", "`5`", "1 to 1000"]
    failure = next(line for line in markdown.splitlines() if line.startswith("| `failurePolicy` |"))
    assert "one of `StopAfterGroup`, `FailFast`, `Continue`" in failure
    steps = next(line for line in markdown.splitlines() if line.startswith("| `steps` |"))
    assert "**required**" in steps and "1 to 1000 items" in steps


def test_a_page_that_asks_for_a_reference_gets_it_in_place_of_the_marker():
    page = "# Fields\n\n<!-- crd-fields: deploy/crds/steppools.stepflow.dev.yaml -->\n"
    out = crd_reference.on_page_markdown(page, None, {"config_file_path": str(ROOT / "mkdocs.yml")}, None)
    assert "crd-fields" not in out
    assert "### `spec` {#steppool-spec}" in out and "| `limit` |" in out


# --- examples ----------------------------------------------------------------------------------

@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_starts_by_saying_what_it_shows_and_what_to_run(example):
    text = example.read_text()
    header = text[: text.index("apiVersion:")]
    assert header.startswith("# ") and len(examples_index.summary(text)) > 40
    assert f"examples/{example.name}" in header, "the header names the command to run, with the file"
    assert "stepflow run" in header or "kubectl apply" in header


def test_the_examples_page_lists_every_example_with_its_summary_and_file():
    source = (ROOT / "docs" / "examples.md").read_text()
    page = examples_index.on_page_markdown(source, None, {"config_file_path": str(ROOT / "mkdocs.yml")}, None)
    assert "examples-index" not in page
    for example in EXAMPLES:
        text = example.read_text()
        assert f"## `{example.name}` {{#{example.stem}}}" in page
        assert examples_index.summary(text) in page
        assert text.rstrip("\n") in page


# --- workflows shown in the docs ---------------------------------------------------------------

def yaml_blocks(page: Path) -> list[str]:
    return [textwrap.dedent(block)  # a block inside a tab is indented
            for block in re.findall(r"```yaml[^\n]*\n(.*?)```", page.read_text(), re.S)]


def shown_workflows() -> Iterator[tuple[str, str]]:
    """Every complete Workflow document in a yaml block of the docs or the README (a block may
    hold step types next to it)."""
    for page in [*PAGES, ROOT / "README.md"]:
        for text in yaml_blocks(page):
            ours = re.search(r"^apiVersion: stepflow\.dev/.*\nkind: Workflow$", text, re.M)
            if ours and INTENDED_INVALID not in text:
                yield page.name, text


SHOWN = list(shown_workflows())


def types_a_reader_has(page: str) -> Catalog:
    """The step types a workflow on ``page`` may use: those the page shows, the catalogue's
    (deploy/catalogue/) and the examples' (examples/platform-types.yaml, say)."""
    docs = [d for text in yaml_blocks(next(p for p in [*PAGES, ROOT / "README.md"] if p.name == page))
            for d in yaml.safe_load_all(text) if is_step_type(d)]
    for path in [*sorted((ROOT / "deploy" / "catalogue").glob("*.yaml")), *EXAMPLES]:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if is_step_type(d)]
    types = []
    for doc in docs:
        found, errors = read_step_type(doc)
        assert errors == [], errors
        types.append(found)
    return Catalog.of(types)


@pytest.mark.parametrize(("page", "text"), SHOWN, ids=[f"{page}-{i}" for i, (page, _) in enumerate(SHOWN)])
def test_every_workflow_the_docs_show_is_valid_for_a_cluster(page, text):
    (doc,) = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "Workflow"]
    plan = compile_workflow(doc, types_a_reader_has(page))
    assert cluster_errors(plan) == []


def test_a_step_type_the_docs_use_must_exist_somewhere_a_reader_can_find_it():
    doc = {"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
           "spec": {"steps": [{"name": "a", "type": "no-such-type"}]}}
    with pytest.raises(SpecError, match='step type "no-such-type"'):
        compile_workflow(doc, types_a_reader_has("step-types.md"))


def test_the_docs_show_workflows_to_check():
    assert {page for page, _ in SHOWN} >= {"README.md", "workflow-reference.md", "coming-from.md",
                                            "step-types.md"}


# --- figures -----------------------------------------------------------------------------------

def test_a_figure_file_names_its_date_machine_commit_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/plan_scale.py", "--markdown", "docs/figures/x.md"])
    table = Table(title="[bold]planning[/bold]")
    table.add_column("shape")
    table.add_column("10,000 steps", justify="right")
    table.add_row("chain", "[green]132 ms[/green]")
    table.add_row("a | b", "1 ms")
    out = tmp_path / "figures" / "x.md"
    figures.write_markdown(str(out), [table, "a [yellow]note[/yellow]"])
    text = out.read_text()
    machine = figures.machine()
    assert re.search(r"^Measured on \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert f"on {machine['cores']} cores" in text and f"Python {machine['python']}" in text
    assert f"{machine['memory_gib']} GiB of memory" in text and "at commit " in text
    assert "benchmarks/plan_scale.py --markdown docs/figures/x.md\n```" in text
    assert ("**planning**\n\n| shape | 10,000 steps |\n| --- | ---: |\n| chain | 132 ms |\n"
            "| a \\| b | 1 ms |") in text
    assert text.rstrip().endswith("a note")


def test_a_page_including_a_figure_never_written_fails_the_build_naming_the_command(tmp_path):
    from mkdocs.exceptions import PluginError

    (tmp_path / "docs" / "figures").mkdir(parents=True)
    (tmp_path / "docs" / "figures" / "plan_scale.md").write_text("a table\n")
    config = {"config_file_path": str(tmp_path / "mkdocs.yml")}
    page = type("Page", (), {"file": type("File", (), {"src_uri": "performance.md"})()})()
    written = '--8<-- "plan_scale.md"\n'
    assert figures_check.on_page_markdown(written, page, config, None) == written
    with pytest.raises(PluginError) as missing:
        figures_check.on_page_markdown(written + '--8<-- "reliability.md"\n--8<-- "ui_render.md"\n', page,
                                       config, None)
    message = str(missing.value)
    assert "docs/figures/reliability.md (written by `make chaos`)" in message
    assert "`.venv/bin/python benchmarks/ui_render.py --markdown docs/figures/ui_render.md`" in message
    assert "plan_scale" not in message
