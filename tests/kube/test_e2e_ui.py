"""``stepflow ui`` in Debian's Chromium, against the operator on the real control plane.

The UI logs in as a ServiceAccount that may only read, so the real authorizer and the audit log
prove it read-only. The screenshots in docs/ are taken here, of these runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kube.browser import (
    READ_VERBS,
    PageWatch,
    browser,
    grouped_workflow,
    pending_status,
    ui_server,
    verbs_of,
    viewer_kubeconfig,
)
from kube.realcluster import step, wait_for, workflow
from operator_harness import ROOT
from stepflow.graph import graph_model
from stepflow.palette import PHASE_FILLS
from stepflow.plan import compile_workflow

DOCS = ROOT / "docs"
DOCS.mkdir(exist_ok=True)
VIEWER = "ui-viewer"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        with browser() as instance:
            yield instance
    except RuntimeError as error:  # no Chromium: a failure that says how to install it
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    watch = PageWatch(opened)
    opened.stepflow_watch = watch
    yield opened
    context.close()
    assert not watch.errors, "the browser console had errors:\n" + "\n".join(watch.errors)
    assert not watch.foreign_requests(), f"requests left 127.0.0.1: {watch.foreign_requests()}"


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def wait_js(page: Any, expression: str, timeout: float = 10) -> None:
    """Poll a JavaScript expression (``wait_for_function`` evals a string, which the UI's CSP forbids)."""
    wait_for(lambda: page.evaluate(expression), timeout=timeout, interval=0.02, message=expression)


def node_fill(page: Any, name: str) -> str:
    return page.eval_on_selector(f'g.node[data-step="{name}"] rect', "r => getComputedStyle(r).fill")


RELEASE = workflow(
    "release",
    [
        step("lint", parallel=True),
        step("unit-tests", parallel=True),
        step("build"),
        step("deploy-eu", parallelGroup=3),
        step("deploy-us", parallelGroup=3),
        step("smoke-test"),
        step("notify", dependsOn=["build"]),
    ],
)
BROKEN = workflow(
    "broken",
    [step("prepare"), step("migrate", exit_code=3, message="table users is locked", type="db-migration",
                           **{"with": {"DATABASE": "users"}}), step("announce")],
)
# migrate's type: its panel shows the type and the params the step gave (T3)
MIGRATION = {"apiVersion": "stepflow.dev/v1alpha1", "kind": "StepType", "metadata": {"name": "db-migration"},
             "spec": {"description": "migrates a database", "params": [
                 {"name": "DATABASE"}, {"name": "LOCK_TIMEOUT", "default": "30s"}]}}


def test_the_pages_follow_a_real_run_read_only(kube, operator, page, tmp_path):
    """The list, the DAG, a live colour change, a failed step's panel; all as a read-only user."""
    other = f"{kube.namespace[:50]}-other"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    kube.create(workflow("elsewhere", [step("x", hold=True)], suspend=True), namespace=other)
    kube.create(RELEASE)
    kube.create(MIGRATION)
    kube.create(BROKEN)
    kube.create(workflow("live", [step("approve", hold=True), step("ship")]))
    config = viewer_kubeconfig(kube.plane, kube.namespace, VIEWER, tmp_path / "viewer.kubeconfig")
    try:
        with ui_server(config, tmp_path / "ui.log", "-n", kube.namespace) as ui:
            kube.wait_phase("release")
            kube.wait_phase("broken")
            wait_for(lambda: kube.step_phase("live", "approve") == "Running")
            check_the_list(kube, page, ui.url)
            check_the_graph(kube, page, ui.url)
            check_a_failed_steps_panel(kube, page, ui.url)
            check_a_live_change(kube, page, ui.url)
        with ui_server(config, tmp_path / "ui-all.log", "-A") as ui:
            page.goto(ui.url)
            page.wait_for_selector(f'tr[data-key="{other}/elsewhere"]')
            assert page.locator(f'tr[data-key="{kube.namespace}/release"]').count() == 1
    finally:
        kube.delete("namespaces", other)
    assert verbs_of(kube.plane, kube.namespace, VIEWER) <= READ_VERBS


# True when a cell's last text node lies wholly inside the cell: drawn, not clipped away.
TEXT_INSIDE = """td => {
    const range = document.createRange();
    range.selectNodeContents(td.lastChild);
    const text = range.getBoundingClientRect(), box = td.getBoundingClientRect();
    return text.width > 0 && text.top >= box.top - 1 && text.bottom <= box.bottom + 1;
}"""


def check_the_list(kube: Any, page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-loaded=list]")
    rows = page.locator("table.workflows tbody tr")
    shown = {
        rows.nth(i).get_attribute("data-key"): rows.nth(i).locator("td.phase").inner_text()
        for i in range(rows.count())
    }
    expected = {
        f"{kube.namespace}/{name}": kube.status(name)["phase"] for name in ("release", "broken", "live")
    }
    assert shown == expected  # -n: the workflow in the other namespace is not listed
    for name, share in (("release", 1), ("live", 0)):
        cell = page.locator(f'tr[data-key="{kube.namespace}/{name}"] td.progress')
        assert cell.inner_text().strip() == kube.status(name)["progress"]
        assert cell.evaluate(TEXT_INSIDE), f"{name}'s progress text is cut off"
        fill = cell.evaluate(
            "td => td.querySelector('.meter > span').offsetWidth / td.querySelector('.meter').offsetWidth"
        )
        assert fill == share
    page.select_option('select[aria-label="phase"]', "Failed")
    assert page.locator("table.workflows tbody tr:visible").count() == 1
    page.select_option('select[aria-label="phase"]', "")
    page.screenshot(path=str(DOCS / "ui-list.png"))


def check_the_graph(kube: Any, page: Any, url: str) -> None:
    page.goto(f"{url}#/w/{kube.namespace}/release")
    page.wait_for_selector("body[data-loaded=workflow]")
    status = kube.status("release")
    model = graph_model(compile_workflow(RELEASE))
    nodes = page.locator("g.node")
    drawn = {
        nodes.nth(i).get_attribute("data-step"): (
            nodes.nth(i).get_attribute("data-column"),
            nodes.nth(i).get_attribute("data-phase"),
        )
        for i in range(nodes.count())
    }
    assert drawn == {
        name: (str(2 * entry["group"]), entry["phase"]) for name, entry in status["steps"].items()
    }
    edges = page.locator("path.edge")
    paths = {
        (edges.nth(i).get_attribute("data-source"), edges.nth(i).get_attribute("data-target"))
        for i in range(edges.count())
    }
    assert paths == set(model["edges"])  # dependsOn and the groups' barriers, as the plan has them
    titles = page.locator("text.band-title").all_text_contents()
    assert titles == [g["title"] for g in model["groups"]]
    xs = {
        name: page.eval_on_selector(f'g.node[data-step="{name}"]', "g => g.getBBox().x + g.getCTM().e")
        for name in ("lint", "build", "deploy-eu", "smoke-test")
    }
    assert xs["lint"] < xs["build"] < xs["deploy-eu"] < xs["smoke-test"]  # groups are columns, in order
    assert node_fill(page, "build") == rgb(PHASE_FILLS["Succeeded"])
    bars = page.locator("#gantt .row")
    assert bars.count() == len(status["steps"])
    page.click('g.node[data-step="notify"]')
    wait_js(page, "document.querySelector('#panel pre.logs')?.textContent.includes('step finished')")
    page.screenshot(path=str(DOCS / "ui-workflow.png"))


def check_a_failed_steps_panel(kube: Any, page: Any, url: str) -> None:
    page.goto(f"{url}#/w/{kube.namespace}/broken")
    page.wait_for_selector("body[data-loaded=workflow]")
    entry = kube.status("broken")["steps"]["migrate"]
    assert node_fill(page, "migrate") == rgb(PHASE_FILLS["Failed"])
    page.click('g.node[data-step="migrate"]')
    panel = page.locator("#panel")
    assert panel.locator('dd[data-field="reason"]').inner_text() == entry["reason"]
    assert panel.locator('dd[data-field="exit-code"]').inner_text() == "3" == str(entry["exitCode"])
    assert "table users is locked" in panel.inner_text()
    assert panel.locator('dd[data-field="type"]').inner_text() == "db-migration"
    params = panel.locator("table.params tr")
    assert [params.nth(i).inner_text().split("\t") for i in range(params.count())] == [
        ["DATABASE", "users"], ["LOCK_TIMEOUT", "30s"]]
    wait_js(page, "document.querySelector('#panel pre.logs').textContent.includes('step finished')")
    page.screenshot(path=str(DOCS / "ui-failed-step.png"))


def check_a_live_change(kube: Any, page: Any, url: str) -> None:
    page.goto(f"{url}#/w/{kube.namespace}/live")
    page.wait_for_selector("body[data-loaded=workflow]")
    assert node_fill(page, "approve") == rgb(PHASE_FILLS["Running"])
    page.evaluate("window.__sameDocument = true")
    kube.release("live-1-approve")
    wait_for(lambda: kube.step_phase("live", "approve") == "Succeeded", interval=0.02)
    seen = time.time()
    wait_js(page, "window.stepflowUI.applied['approve']?.phase === 'Succeeded'")
    shown = page.evaluate("window.stepflowUI.applied['approve'].at") / 1000
    assert shown - seen < 2.0, f"the page showed the change {shown - seen:.2f} s after the API had it"
    assert node_fill(page, "approve") == rgb(PHASE_FILLS["Succeeded"])
    assert page.evaluate("window.__sameDocument") is True  # no reload
    kube.wait_phase("live")


def test_a_1000_step_workflow_page_renders_and_updates_in_place(kube, page, tmp_path):
    """No operator: the test writes the status itself, one step at a time, as a run would."""
    kube.create(grouped_workflow("big", 1000, group_size=100))
    kube.patch("workflows", "big", {"status": pending_status(1000, group_size=100)}, "status")
    with ui_server(kube.plane.kubeconfig, tmp_path / "ui.log", "-n", kube.namespace) as ui:
        page.goto(f"{ui.url}#/w/{kube.namespace}/big")
        page.wait_for_selector("body[data-loaded=workflow]", timeout=60_000)
        assert page.locator("g.node").count() == 1000
        assert page.locator("#gantt .row").count() == 1000
        assert page.locator("text.band-title").count() == 10
        page.evaluate("document.querySelectorAll('g.node').forEach(g => { g.__drawn = true; })")
        for name, phase in (("s0", "Running"), ("s0", "Succeeded"), ("s500", "Failed")):
            kube.patch("workflows", "big", {"status": {"steps": {name: {"phase": phase}}}}, "status")
            wait_js(page, f"window.stepflowUI.applied['{name}']?.phase === '{phase}'")
        assert node_fill(page, "s500") == rgb(PHASE_FILLS["Failed"])
        redrawn = page.evaluate("[...document.querySelectorAll('g.node')].filter(g => !g.__drawn).length")
        assert redrawn == 0  # the updates changed nodes in place; nothing was drawn again
        started = time.monotonic()
        page.locator('g.node[data-step="s999"]').dispatch_event("click")
        page.wait_for_selector('#panel h2:text-is("s999")')
        assert time.monotonic() - started < 5


NAMES = [f"svc-{i:03d}" for i in range(256)]


def test_a_256_copy_matrix_is_one_box_that_opens_into_its_copies(kube, operator, page, tmp_path):
    """M6: the list comes from an output, so the page first shows one node marked with its source;
    when the run records the 256 copies the page draws one box that counts them, and opened it
    lists them in a list that scrolls, never as 256 nodes. The copies finish live, in place."""
    listed = {"fromOutput": {"step": "list", "output": "names"}}
    kube.create(workflow("fan", [
        step("list", hold=True, message="names=" + json.dumps(NAMES), outputs=["names"]),
        step("deploy", duration="100ms", matrix={"service": listed}),
        step("after"),
    ], maxConcurrency=100))
    with ui_server(kube.plane.kubeconfig, tmp_path / "ui.log", "-n", kube.namespace) as ui:
        wait_for(lambda: kube.step_phase("fan", "list") == "Running")
        page.goto(f"{ui.url}#/w/{kube.namespace}/fan")
        page.wait_for_selector("body[data-loaded=workflow]")
        box = page.locator('g.node[data-step="deploy"]')
        assert box.locator("text.count").text_content() == "fans out over output names of list"
        page.evaluate("window.__sameDocument = true")
        kube.release("fan-1-list")
        wait_js(page, "document.querySelector('g.node[data-step=\"deploy\"] text.count')"
                      "?.textContent.startsWith('256 copies')", timeout=30)
        assert page.locator("g.node").count() == 3  # list, the box and after: not 256 nodes
        assert page.locator("g.node.matrix").count() == 1
        assert page.locator(".copies .copy").count() == 0  # closed until opened
        started = time.monotonic()
        box.click()
        wait_js(page, "document.querySelectorAll('.copies .copy').length === 256")
        assert time.monotonic() - started < 5, "opening the box took over 5 s"
        assert box.get_attribute("data-open") == "true"
        assert page.locator(".copies .copy .values").all_text_contents() == NAMES
        assert box.evaluate("g => g.getBBox().height") < 300  # the list scrolls inside the box
        copies = page.locator(".copies")
        copies.evaluate("list => { list.scrollTop = list.scrollHeight; }")
        last = page.locator('.copy[data-step="deploy-255"]').bounding_box()
        frame = copies.bounding_box()
        assert frame["y"] <= last["y"] and last["y"] + last["height"] <= frame["y"] + frame["height"] + 1
        page.locator('.copy[data-step="deploy-255"]').click()
        panel = page.locator("#panel")
        page.wait_for_selector('#panel h2:text-is("deploy-255")')
        assert panel.locator(".copy-of").inner_text() == "copy 255 of deploy"
        assert panel.locator("table.matrix tr").all_inner_texts() == ["service\tsvc-255"]
        status = kube.wait_phase("fan", timeout=240)
        assert status["phase"] == "Succeeded", status.get("message")
        wait_js(page, "document.querySelector('g.node[data-step=\"deploy\"] text.count')"
                      ".textContent === '256 copies: 256 ✓'", timeout=30)
        assert box.get_attribute("data-phase") == "Succeeded"
        finished = page.locator('.copies .copy[data-phase="Succeeded"]').count()
        assert finished == 256  # each copy recoloured in place
        assert page.locator("#gantt .row").count() == 1 + 256 + 1  # a bar per copy
        assert page.evaluate("window.__sameDocument") is True  # no reload
        page.screenshot(path=str(DOCS / "ui-matrix.png"))
