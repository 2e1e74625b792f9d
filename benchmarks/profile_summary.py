"""Where the operator's CPU goes, from a py-spy profile in collapsed stacks.

    python benchmarks/profile_summary.py PROFILE.txt [--markdown PATH]

``benchmarks/operator_latency.py --profile PROFILE.txt`` writes the profile (py-spy ``raw``
format, ``--gil``: only the thread holding the GIL is sampled, so the samples are CPU, not
waiting). Each sample is a stack, outermost frame first; this sums them two ways:

- **inclusive**, by the work a frame belongs to: a sample counts for every bucket one of its
  frames falls in (kopf's event handling, the reconcile, its status write, ...), so the rows
  nest and do not add up to 100%;
- **self**, by the package of the innermost frame: where the CPU is spent in the end; these
  rows add up to 100%.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures

# (label, a regular expression one of the sample's frames must match), outer work first.
INCLUSIVE = (
    ("kopf: watch streams and event dispatch", r"[(/]kopf/"),
    ("  stepflow's watch handlers (cache + wake)", r"stepflow/operator/watch_events\.py"),
    ("the reconcile (operator/reconcile.py)", r"stepflow/operator/reconcile\.py"),
    ("  observe: Jobs and pods into step states", r"stepflow/operator/observe\.py"),
    ("  plan: compile the workflow (cached per spec)", r"stepflow/(plan|spec)\.py"),
    ("  decide: the engine", r"stepflow/engine/"),
    ("  apply: Job manifests and creates", r"stepflow/operator/apply\.py"),
    ("  record: the status patch and Events", r"stepflow/operator/record\.py"),
    ("API calls (runtime/api.py and below)", r"stepflow/operator/runtime/api\.py"),
    ("JSON encode and decode", r"[(/]json/"),
    ("logging", r"[(/]logging/"),
    ("garbage collection", r"<gc>|gc_collect"),
)
# (label, a regular expression the innermost frame's file must match); the first match wins.
SELF = (
    ("kopf", r"(^|/)kopf/"),
    ("aiohttp, yarl, multidict", r"(^|/)(aiohttp|yarl|multidict)/"),
    ("the kubernetes client", r"(^|/)kubernetes/"),
    ("urllib3, ssl, http", r"(^|/)(urllib3/|ssl\.py|http/|socket\.py)"),
    ("json", r"(^|/)json/"),
    ("asyncio", r"(^|/)asyncio/"),
    ("stepflow", r"(^|/)stepflow/"),
    ("logging", r"(^|/)logging/"),
    ("threading, queue, concurrent", r"(^|/)(threading\.py|queue\.py|concurrent/)"),
)
FRAME = re.compile(r"\((?P<file>[^:)]*)")


def samples(path: Path) -> Counter[str]:
    """Collapsed stacks: one line per distinct stack, ``frame;frame;... count``."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stack] += int(count)
    return counts


def summarize(counts: Counter[str]) -> tuple[dict[str, float], dict[str, float], int]:
    total = sum(counts.values()) or 1
    inclusive = {label: 0 for label, _ in INCLUSIVE}
    own = {label: 0 for label, _ in SELF} | {"other": 0}
    for stack, count in counts.items():
        for label, pattern in INCLUSIVE:
            if re.search(pattern, stack):
                inclusive[label] += count
        innermost = stack.rsplit(";", 1)[-1]
        found = FRAME.search(innermost)
        file = found["file"] if found else innermost
        label = next((label for label, pattern in SELF if re.search(pattern, file)), "other")
        own[label] += count
    share = lambda table: {k: 100 * v / total for k, v in table.items()}  # noqa: E731
    return share(inclusive), share(own), total


def report(console: figures.Report, inclusive: dict[str, float], own: dict[str, float], total: int,
           title: str) -> None:
    for rows, heading, kind in ((inclusive, "work (inclusive: rows nest)", "inclusive"),
                                (own, "package of the innermost frame (self: adds up to 100%)", "self")):
        table = Table(title=f"{title}: {kind}, {total} samples")
        table.add_column(heading)
        table.add_column("share of CPU samples", justify="right")
        for label, value in sorted(rows.items(), key=lambda kv: -kv[1]) if kind == "self" else rows.items():
            table.add_row(label, f"{value:.1f}%")
        console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path, help="py-spy collapsed stacks (raw format)")
    parser.add_argument("--title", default="the operator's CPU during the throughput run (py-spy --gil)")
    parser.add_argument("--markdown", metavar="PATH", help=figures.MARKDOWN_HELP)
    args = parser.parse_args()
    inclusive, own, total = summarize(samples(args.profile))
    printed = figures.Report(Console())
    report(printed, inclusive, own, total, args.title)
    printed.write(args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
