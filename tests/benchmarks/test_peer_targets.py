"""benchmarks/peer_targets.py: DESIGN.md's "Against the peers" targets, judged from one run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("peer_targets", ROOT / "benchmarks" / "peer_targets.py")
peer_targets = importlib.util.module_from_spec(spec)
sys.modules["peer_targets"] = peer_targets
spec.loader.exec_module(peer_targets)


def run(**figures: dict[str, dict[str, float]]) -> dict:
    return {key.replace("_", "-"): value for key, value in figures.items()}



def test_the_lowest_peer_variant_is_the_bar_and_a_missing_figure_is_never_met():
    results = run(stepflow={"throughput": {"cpu_ms_per_step": 10.0, "writes_per_step": 3.0}},
                  argo={"throughput": {"cpu_ms_per_step": 40.0, "writes_per_step": 2.5}},
                  argo_tuned={"throughput": {"cpu_ms_per_step": 30.0, "writes_per_step": 4.0}},
                  tekton={"throughput": {"error": "it crashed"}})
    verdicts = {name: (verdict, said) for name, verdict, said in peer_targets.verdicts(results)}
    cpu = verdicts["controller CPU per step <= 1/2 of the lower peer's"]
    assert cpu[0] == "met" and "argo-tuned 30.00 ms = 15.00 ms" in cpu[1]
    assert verdicts["API writes per step, Events included <= the lower peer's"][0] == "MISSED"
    assert verdicts["memory with finished workflows <= the lower peer's"][0] == "not measured"


def test_the_chain_needs_both_ten_times_argo_tuned_and_four_times_tekton():
    results = run(stepflow={"chain": {"steps_per_second": 9.0}},
                  argo_tuned={"chain": {"steps_per_second": 0.9}},
                  tekton={"chain": {"steps_per_second": 2.5}})
    chain = dict((n, v) for n, v, _ in peer_targets.verdicts(results))
    assert chain["a chain, steps/s end to end >= 10x Argo tuned's and >= 4x Tekton's"] == "MISSED"
    results["stepflow"]["chain"]["steps_per_second"] = 10.0
    chain = dict((n, v) for n, v, _ in peer_targets.verdicts(results))
    assert chain["a chain, steps/s end to end >= 10x Argo tuned's and >= 4x Tekton's"] == "met"
