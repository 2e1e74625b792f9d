"""What the pages draw, computed from Workflow objects. Mirror: ``operator/stepflow/ui/model.py``."""

from __future__ import annotations

from typing import Any

from stepflow.graph import MAIN_DONE
from stepflow.ui.model import changed_steps, copies_label, detail, expansion_key, graph, step_views, summary


def workflow(
    steps: list[dict[str, Any]], status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "stepflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": "w",
            "namespace": "team",
            "generation": 1,
            "creationTimestamp": "2026-12-03T10:00:00Z",
        },
        "spec": {"defaults": {"image": "alpine"}, "steps": steps, **spec},
        **({"status": status} if status is not None else {}),
    }


def s(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "script": "true", **fields}


def test_groups_are_columns_in_plan_order_with_their_barrier_between_them():
    model = graph(workflow([s("a"), s("b", parallel=True), s("c", parallel=True), s("d")]))
    columns = {n["id"]: n["column"] for n in model["nodes"]}
    assert columns == {"a": 0, "#0": 1, "b": 2, "c": 2, "#1": 3, "d": 4}
    assert [g["title"] for g in model["groups"]] == ["group 1", "group 2", "group 3"]
    assert {("a", "#0"), ("#0", "b"), ("#0", "c"), ("b", "#1"), ("c", "#1"), ("#1", "d")} == set(
        model["edges"]
    )


def test_depends_on_edges_go_straight_from_step_to_step():
    model = graph(workflow([s("a"), s("b"), s("c", dependsOn=["a"])]))
    assert ("a", "c") in model["edges"]
    assert ("#1", "c") not in model["edges"]  # c waits for a only, not for b's group


def test_finally_steps_sit_after_the_every_main_step_is_over_node():
    doc = workflow([s("a"), s("b")])
    doc["spec"]["finally"] = [s("cleanup")]
    model = graph(doc)
    columns = {n["id"]: n["column"] for n in model["nodes"]}
    assert columns["cleanup"] > columns[MAIN_DONE] > columns["b"]
    assert model["groups"][-1] == {"column": columns["cleanup"], "title": "finally group 1", "finally": True}


def test_an_invalid_workflow_gets_its_errors_instead_of_a_graph():
    model = graph(workflow([s("a", dependsOn=["nope"])]))
    assert model["nodes"] == [] and any("nope" in e for e in model["errors"])


STATUS = {
    "phase": "Running",
    "progress": "1/3",
    "startedAt": "2026-12-03T10:00:00Z",
    "steps": {
        "a": {
            "index": 0,
            "group": 0,
            "phase": "Succeeded",
            "startedAt": "2026-12-03T10:00:01Z",
            "finishedAt": "2026-12-03T10:00:04Z",
            "jobName": "w-1-a",
            "outputs": {"v": "1"},
        },
        "b": {
            "index": 1,
            "group": 1,
            "phase": "Running",
            "startedAt": "2026-12-03T10:00:05Z",
            "jobName": "w-1-b",
        },
        "c": {"index": 2, "group": 2, "phase": "Skipped", "reason": "ConditionFalse"},
    },
}


def test_step_views_are_on_the_timelines_axis_and_a_running_step_has_no_end():
    views = step_views(STATUS)
    assert (views["a"]["start"], views["a"]["end"]) == (1.0, 4.0)
    assert views["b"]["start"] == 5.0 and views["b"]["end"] is None
    assert views["c"]["phaseLabel"] == "Skipped (condition)" and views["c"]["start"] is None
    assert views["a"]["outputs"] == {"v": "1"} and views["a"]["groupLabel"] == "1"


def test_the_summary_counts_finished_steps_and_a_new_workflow_counts_its_spec():
    row = summary(workflow([s("a"), s("b"), s("c")], STATUS))
    assert (row["phase"], row["done"], row["total"], row["progress"]) == ("Running", 1, 3, "1/3")
    fresh = summary(workflow([s("a"), s("b")]))
    assert (fresh["phase"], fresh["done"], fresh["total"]) == ("Pending", 0, 2)


def test_only_the_steps_that_changed_are_sent_again():
    before = step_views(STATUS)
    status = {
        **STATUS,
        "steps": {
            **STATUS["steps"],
            "b": {**STATUS["steps"]["b"], "phase": "Succeeded", "finishedAt": "2026-12-03T10:00:09Z"},
        },
    }
    changed = changed_steps(before, step_views(status))
    assert list(changed) == ["b"] and changed["b"]["end"] == 9.0


def test_the_page_has_its_header_graph_and_steps():
    page = detail(workflow([s("a"), s("b"), s("c")], STATUS))
    assert page["summary"]["name"] == "w" and page["generation"] == 1
    assert page["origin"] is not None and set(page["steps"]) == {"a", "b", "c"}
    assert {n["id"] for n in page["graph"]["nodes"] if not n.get("join")} == {"a", "b", "c"}


def test_a_typed_steps_node_carries_its_type_and_params_from_what_the_run_kept():
    """The step panel shows a step's type and params (T3); a run in progress resolves them from
    ``status.stepTypes``, as the operator does, so the page needs no access to the types."""
    kept = {"kind": "ClusterStepType", "name": "scan", "resourceVersion": "3", "spec": {
        "image": "scanner:1", "script": 'scan "$TARGET"',
        "params": [{"name": "TARGET"}, {"name": "LEVEL", "default": "high"}]}}
    steps = [{"name": "a", "type": "scan", "with": {"TARGET": "repo"}}, s("b", type="label-only")]
    nodes = {n["id"]: n for n in graph(workflow(steps, {"stepTypes": {"scan": kept}}))["nodes"]}
    assert nodes["a"]["type"] == "scan" and nodes["a"]["params"] == {"TARGET": "repo", "LEVEL": "high"}
    assert nodes["b"]["type"] == "label-only" and "params" not in nodes["b"]
    waiting = graph(workflow(steps))  # before its run: the type is not known to the page
    assert waiting["nodes"] == [] and any('"scan"' in e for e in waiting["errors"])


# --- a matrix step (M6): one box, its copies inside -------------------------------------------


def test_a_matrix_steps_copies_are_one_node_that_lists_them_and_shares_their_edges():
    model = graph(workflow([s("a"), s("deploy", matrix={"region": ["eu", "us", "ap"], "tier": ["a", "b"]}),
                            s("after", dependsOn=["deploy"])]))
    assert [n["id"] for n in model["nodes"] if not n.get("join")] == ["a", "deploy", "after"]
    box = next(n for n in model["nodes"] if n["id"] == "deploy")
    assert box["column"] == 2 and box["matrix"] == {"region": ["eu", "us", "ap"], "tier": ["a", "b"]}
    assert [c["id"] for c in box["copies"]] == [f"deploy-{i}" for i in range(6)]
    assert box["copies"][1]["matrix"] == {"region": "eu", "tier": "b"}  # the first name varies slowest
    assert model["edges"] == [("a", "#0"), ("#0", "deploy"), ("deploy", "after")]  # once, not per copy


def test_a_256_copy_step_is_still_one_node():
    sixteen = [str(i) for i in range(16)]
    model = graph(workflow([s("fan", matrix={"x": sixteen, "y": sixteen}), s("after")]))
    assert [n["id"] for n in model["nodes"]] == ["fan", "after", "#0"]
    assert len(model["nodes"][0]["copies"]) == 256 and model["edges"] == [("fan", "#0"), ("#0", "after")]


LISTED = [s("list", outputs=["services"]),
          s("build", matrix={"svc": {"fromOutput": {"step": "list", "output": "services"}}}),
          s("report", dependsOn=["build"])]


def fanned_out(services: list[str], phases: list[str]) -> dict[str, Any]:
    """A run's status once ``build`` has fanned out over ``services``, its copies in ``phases``."""
    steps: dict[str, Any] = {"list": {"index": 0, "group": 0, "phase": "Succeeded", "startedAt":
                                      "2026-12-03T10:00:01Z", "finishedAt": "2026-12-03T10:00:02Z"}}
    for i, (service, phase) in enumerate(zip(services, phases, strict=True)):
        steps[f"build-{i}"] = {"index": 1 + i, "group": 1, "phase": phase, "matrixOf": "build",
                               "matrix": {"svc": service}, "startedAt": "2026-12-03T10:00:03Z"}
        if phase in ("Succeeded", "Failed"):
            steps[f"build-{i}"]["finishedAt"] = "2026-12-03T10:00:04Z"
    steps["build"] = {"index": 1, "group": 1, "phase": "Running", "copies": len(services),
                      "startedAt": "2026-12-03T10:00:03Z"}
    steps["report"] = {"index": 1 + len(services), "group": 2, "phase": "Pending"}
    return {"phase": "Running", "startedAt": "2026-12-03T10:00:00Z", "steps": steps}


def test_a_list_from_an_output_is_one_node_marked_with_its_source_until_the_run_reads_it():
    before = {n["id"]: n for n in graph(workflow(LISTED))["nodes"]}
    assert before["build"]["fanOut"] == "fans out over output services of list"
    assert "copies" not in before["build"]
    status = fanned_out(["api", "web"], ["Running"] * 2)
    after = {n["id"]: n for n in graph(workflow(LISTED, status))["nodes"]}
    assert "fanOut" not in after["build"] and "build-0" not in after
    assert after["build"]["copies"] == [{"id": "build-0", "matrix": {"svc": "api"}},
                                        {"id": "build-1", "matrix": {"svc": "web"}}]


def test_the_box_counts_its_copies_by_phase_and_a_copy_knows_whose_copy_it_is():
    phases = ["Succeeded", "Failed", "Succeeded", "Running", "Succeeded", "Succeeded"]
    views = step_views(fanned_out(["a", "b", "c", "d", "e", "f"], phases))
    assert views["build"]["copiesLabel"] == "6 copies: 4 ✓ 1 ✗ 1 running"
    assert views["build"]["phase"] == "Running" and views["build"]["copies"] == 6
    assert views["build-4"]["copyIndex"] == 4 and views["build-4"]["matrixOf"] == "build"
    assert views["build-4"]["matrix"] == {"svc": "e"} and "copiesLabel" not in views["build-4"]
    assert copies_label(1, []) == "1 copy"
    assert copies_label(2, ["Pending", "Cancelled"]) == "2 copies: 1 pending 1 cancelled"


def test_a_copys_change_sends_the_box_its_new_count_too():
    before = step_views(fanned_out(["a", "b"], ["Running", "Running"]))
    changed = changed_steps(before, step_views(fanned_out(["a", "b"], ["Running", "Failed"])))
    assert set(changed) == {"build-1", "build"}
    assert changed["build"]["copiesLabel"] == "2 copies: 1 ✗ 1 running"


def test_the_list_counts_copies_as_steps_and_not_their_matrix_steps_entry():
    row = summary(workflow(LISTED, fanned_out(["a", "b", "c"], ["Succeeded"] * 3)))
    assert (row["done"], row["total"]) == (1 + 3, 1 + 3 + 1)


def test_the_graph_is_drawn_again_when_a_step_fans_out_and_only_then():
    doc = workflow(LISTED, {"phase": "Running", "steps": {}})
    model = graph(doc)
    waiting = expansion_key(doc["status"], model)
    running = fanned_out(["a", "b"], ["Running", "Running"])
    assert expansion_key(running, model) != waiting
    finished = fanned_out(["a", "b"], ["Succeeded", "Succeeded"])
    assert expansion_key(finished, model) == expansion_key(running, model)
    assert expansion_key(STATUS, graph(workflow([s("a"), s("b"), s("c")], STATUS))) == ()
