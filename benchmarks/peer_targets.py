"""DESIGN.md's "Against the peers" targets, judged from one run of benchmarks/peers.py.

Every figure compared comes from the same run. Where a target names "the lower of the two",
the lowest of every peer variant measured is taken (Argo at its defaults, Argo tuned, Tekton):
the strictest reading. A target whose figures are missing (a peer or a scenario failed) is
"not measured", never met.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

PEERS = ("argo", "argo-tuned", "tekton")


def figure(results: dict[str, Any], variant: str, scenario: str, measure: str) -> float | None:
    value = ((results.get(variant) or {}).get(scenario) or {}).get(measure)
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    return None


def _lowest(results: dict[str, Any], scenario: str, measure: str) -> tuple[float, str] | None:
    found = [(v, key) for key in PEERS if (v := figure(results, key, scenario, measure)) is not None]
    return min(found) if found else None


Check = Callable[[dict[str, Any]], tuple[str, str]]


def _at_most(scenario: str, measure: str, share: float, unit: str, peers: tuple[str, ...] = ()) -> Check:
    """stepflow's figure <= ``share`` x the peers' lowest (or of ``peers`` named)."""

    def check(results: dict[str, Any]) -> tuple[str, str]:
        ours = figure(results, "stepflow", scenario, measure)
        if peers:
            found = [(v, k) for k in peers if (v := figure(results, k, scenario, measure)) is not None]
            theirs = min(found) if found else None
        else:
            theirs = _lowest(results, scenario, measure)
        if ours is None or theirs is None:
            return "not measured", "-"
        bound = share * theirs[0]
        said = (f"stepflow {ours:.2f}{unit} vs {share:g} x {theirs[1]} {theirs[0]:.2f}{unit} "
                f"= {bound:.2f}{unit}")
        return ("met" if ours <= bound else "MISSED"), said

    return check


def _chain_rate(results: dict[str, Any]) -> tuple[str, str]:
    """>= 10x Argo tuned's steps/s and >= 4x Tekton's, on the single chain."""
    ours = figure(results, "stepflow", "chain", "steps_per_second")
    argo = figure(results, "argo-tuned", "chain", "steps_per_second")
    tekton = figure(results, "tekton", "chain", "steps_per_second")
    if ours is None or argo is None or tekton is None:
        return "not measured", "-"
    met = ours >= 10 * argo and ours >= 4 * tekton
    return ("met" if met else "MISSED",
            f"stepflow {ours:.2f}/s vs 10 x Argo tuned {argo:.2f}/s = {10 * argo:.2f}/s "
            f"and 4 x Tekton {tekton:.2f}/s = {4 * tekton:.2f}/s")


TARGETS: tuple[tuple[str, Check], ...] = (
    ("controller CPU per step <= 1/2 of the lower peer's",
     _at_most("throughput", "cpu_ms_per_step", 0.5, " ms")),
    ("reaction p50 (1 chain) <= 1/10 of Argo tuned's",
     _at_most("chain", "reaction_p50_ms", 0.1, " ms", peers=("argo-tuned",))),
    ("a chain, steps/s end to end >= 10x Argo tuned's and >= 4x Tekton's", _chain_rate),
    ("API writes per step, Events included <= the lower peer's",
     _at_most("throughput", "writes_per_step", 1.0, "")),
    ("fan-out wall time <= the lower peer's", _at_most("fan_out", "wall_seconds", 1.0, " s")),
    ("memory with finished workflows <= the lower peer's", _at_most("memory", "rss_mib", 1.0, " MiB")),
)


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, verdict, the figures it was judged on), in DESIGN.md's order."""
    return [(name, *check(results)) for name, check in TARGETS]
