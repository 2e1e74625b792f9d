"""mkdocs hook: a page that includes a figure file which was never written fails with the
command that writes it, rather than with the include extension's traceback.

The performance and reliability pages include tables from docs/figures/, each written by a
benchmark's ``--markdown`` or by ``make chaos`` (docs/development.md, Figures).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

INCLUDE = re.compile(r'^--8<-- "(?P<name>[^"]+)"$', re.MULTILINE)
WRITTEN_BY = {  # the others: the benchmark of the same name
    "reliability.md": "make chaos",
    "operator_latency_types.md": ".venv/bin/python benchmarks/operator_latency.py --variants tuned "
                                 "--scenarios types --markdown docs/figures/operator_latency_types.md",
    "operator_profile.md": ".venv/bin/python benchmarks/operator_latency.py --variants tuned --scenarios "
                           "throughput --profile build/operator-profile.txt, then .venv/bin/python "
                           "benchmarks/profile_summary.py build/operator-profile.txt --markdown "
                           "docs/figures/operator_profile.md",
}


def writer(name: str) -> str:
    """The command that writes docs/figures/NAME."""
    benchmark = f"benchmarks/{Path(name).stem}.py"
    return WRITTEN_BY.get(name) or f".venv/bin/python {benchmark} --markdown docs/figures/{name}"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    folder = Path(config["config_file_path"]).parent / "docs" / "figures"
    names = [found.group("name") for found in INCLUDE.finditer(markdown)]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        writers = ", ".join(f"docs/figures/{name} (written by `{writer(name)}`)" for name in missing)
        raise PluginError(f"{page.file.src_uri} includes figures that were never written: {writers}")
    return markdown
