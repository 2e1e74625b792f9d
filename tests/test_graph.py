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
