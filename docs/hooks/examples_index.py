"""mkdocs hook: the index of examples/, generated at build time from the files themselves.

A page asks for it with the line ``<!-- examples-index -->``. Each example gets a section: the
first paragraph of its header comment (what it shows) and the whole file, comments included
(what to run is at the top of each). A new example appears without anyone editing the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = "<!-- examples-index -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    root = Path(config["config_file_path"]).parent
    return markdown.replace(MARKER, index(root / "examples"))


def index(folder: Path) -> str:
    parts = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text()
        parts += [
            f"## `{path.name}` {{#{path.stem}}}",
            "",
            summary(text),
            "",
            f'```yaml title="examples/{path.name}"',
            text.rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(parts)


def summary(text: str) -> str:
    """The header comment's first paragraph, as one line of prose."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words = line.lstrip("#").strip()
        if not words:
            if lines:
                break
            continue
        lines.append(words)
    if not lines:
        raise ValueError("an example must start with a comment that says what it shows")
    return re.sub(r"\s+", " ", " ".join(lines))
