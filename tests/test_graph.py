"""Pictures of a plan: Mermaid, DOT and the UI's graph model. Mirror: ``operator/stepflow/graph.py``.

The UI's model is tested through the page's data in tests/ui/test_model.py; the palette they share
with the timeline and the UI in test_palette.py.
"""

from __future__ import annotations

from builders import plan_of
from stepflow.graph import to_dot, to_mermaid


def test_mermaid_has_one_subgraph_per_group_and_every_edge():
    plan = plan_of("p a, p b, s c, s x->")
    text = to_mermaid(plan, phases={"a": "Succeeded", "c": "Failed"})
    assert text.startswith("flowchart TD")
    assert text.count("subgraph") == len(plan.groups)
    assert "s_a --> j_0" in text and "s_b --> j_0" in text and "j_0 --> s_c" in text
    assert "s_x" in text and "--> s_x" not in text  # dependsOn: [] has no incoming edge
    assert "class s_c Failed" in text


def test_mermaid_ids_survive_dashes():
    text = to_mermaid(plan_of("s build-api, s deploy-api"))
    assert "s_build_api" in text and "s_deploy_api" in text
    assert "-api" not in text.replace('"build-api"', "").replace('"deploy-api"', "")


def test_dot_is_a_digraph_with_clusters_and_edges():
    plan = plan_of("s a, s b->a, s c")
    text = to_dot(plan)
    assert text.startswith('digraph "wf" {') and text.rstrip().endswith("}")
    assert text.count("subgraph cluster_") == 3
    assert '"a" -> "b";' in text
    assert '"#1" -> "c";' in text and '"b" -> "#1";' in text


# --- fan-out (M6) ------------------------------------------------------------------------------

def fan_plan(values: list[str], **deploy):
    from builders import step

    return plan_of([step("prep"), step("deploy", matrix={"REGION": values}, **deploy),
                    step("after", depends_on=["deploy"])])


def test_a_literal_matrix_is_a_box_of_its_copies_each_labelled_with_its_values():
    text = to_mermaid(fan_plan(["eu", "us"]))
    assert 'subgraph x_deploy["deploy \u00d72 (REGION)"]' in text
    assert 's_deploy_0["deploy-0<br/>REGION=eu"]' in text and 's_deploy_1["deploy-1<br/>REGION=us"]' in text
    assert "s_deploy_0 --> s_after" in text and "s_deploy_1 --> s_after" in text
    dot = to_dot(fan_plan(["eu", "us"]))
    assert 'subgraph "cluster_x_deploy" { label="deploy \u00d72 (REGION)";' in dot
    assert '"deploy-1" [label="deploy-1\\nREGION=us"];' in dot and '"deploy-1" -> "after";' in dot


def test_a_list_from_an_output_is_one_node_marked_with_its_source():
    from builders import step

    plan = plan_of([step("list", outputs=["services"]),
                    step("build", depends_on=["list"],
                         matrix={"SVC": {"fromOutput": {"step": "list", "output": "services"}}})])
    assert 's_build["build \u00d7(list.services)"]' in to_mermaid(plan)
    assert '"build" [label="build \u00d7(list.services)"];' in to_dot(plan)
    assert "subgraph x_" not in to_mermaid(plan)


def test_a_256_copy_matrix_draws_a_handful_of_nodes_whatever_the_edges():
    plan = fan_plan([f"r{i}" for i in range(256)])
    for text in (to_mermaid(plan), to_dot(plan)):
        assert len(text.splitlines()) < 40 and len(text) < 2_000, text
        assert "… 251 more copies" in text
        assert "deploy-0" in text and "deploy-200" not in text
    mermaid = to_mermaid(plan)
    assert mermaid.count("--> s_after") == 6  # five copies and the "more" node, once each
    assert "j_0 --> m_deploy" in mermaid and "m_deploy --> s_after" in mermaid


def test_coloured_by_phase_a_big_matrix_draws_its_failed_copies():
    plan = fan_plan([f"r{i}" for i in range(256)])
    phases = {f"deploy-{i}": "Succeeded" for i in range(256)} | {"deploy-200": "Failed", "deploy": "Failed"}
    text = to_mermaid(plan, phases)
    assert 's_deploy_200["deploy-200<br/>REGION=r200"]' in text and "class s_deploy_200 Failed" in text
    assert "class s_deploy_100 " not in text  # not drawn, so not classed either
    assert '"deploy-200" [label="deploy-200\\nREGION=r200", style="rounded,filled"' in to_dot(plan, phases)


def test_a_value_cannot_break_out_of_its_label():
    plan = fan_plan(['say "hi" <b>#1</b>', "back\\slash", "esc\x1b[2J"])
    mermaid = to_mermaid(plan)
    assert 'REGION=say #34;hi#34; #60;b#62;#35;1#60;/b#62;"]' in mermaid
    assert "\x1b" not in mermaid and "\\x1b[2J" in mermaid
    dot = to_dot(plan)
    assert 'REGION=say \\"hi\\" <b>#1</b>"]' in dot and 'REGION=back\\\\slash"]' in dot
