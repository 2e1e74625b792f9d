"""The Markdown a benchmark writes for the docs (``--markdown PATH``): its tables, and where they
came from (date, machine, Python, commit and the exact command), so no figure is typed by hand.

A script prints through a ``Report`` instead of its console: the report prints as before and
keeps every table and note, then ``write`` turns them into one Markdown file, which a docs page
includes (docs/figures/). ``make chaos`` writes its table the same way.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN_HELP = "also write the tables as Markdown, with the date, machine and command (for docs/figures/)"


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and OS: what a reader needs to weigh a figure."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def command(env: Sequence[str] = ()) -> str:
    """The command line that ran this process, as typed from the repository's root, with the
    named environment variables in front when they are set."""
    script, *rest = sys.argv
    if Path(script).name == "__main__.py":  # python -m pytest
        argv = [_relative(sys.executable), "-m", Path(script).parent.name, *rest]
    elif Path(script).name in ("pytest", "py.test"):
        argv = [_relative(script), *rest]
    else:
        argv = [_relative(sys.executable), _relative(script), *rest]
    assignments = [f"{name}={_relative(os.environ[name])}" for name in env if os.environ.get(name)]
    return shlex.join([*assignments, *(_relative(a) for a in argv)])


def _relative(path: str) -> str:
    """A path under the repository as seen from its root; anything else unchanged."""
    if not os.path.isabs(path):
        return path
    absolute = Path(os.path.normpath(path))
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else path


def commit() -> str:
    """The checked-out commit, marked when the tree has changes a reader could not see."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD")
    if not head:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "operator", "benchmarks", "tests")
    return f"{head} (with local changes)" if dirty else head


def header(env: Sequence[str] = ()) -> str:
    """One paragraph: when, on what, from which commit, with which command."""
    m = machine()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Measured on {date}, on {m['cores']} cores ({m['cpu']}) with {m['memory_gib']} GiB of "
        f"memory, Python {m['python']}, {m['os']}, at commit {commit()}, by:\n\n"
        f"```sh\n{command(env)}\n```\n"
    )


def plain(cell: Any) -> str:
    """A cell or title as plain text: rich markup removed, ready for a Markdown table."""
    text = cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
    return text.replace("|", "\\|").replace("\n", " ").strip()


def markdown_table(table: Table) -> str:
    """A rich table as a Markdown table, its title as a bold caption above it."""
    columns = table.columns
    rows = zip(*(list(c.cells) for c in columns), strict=True)
    lines = []
    if table.title:
        lines += [f"**{plain(table.title)}**", ""]
    lines.append("| " + " | ".join(plain(c.header) or " " for c in columns) + " |")
    lines.append("| " + " | ".join("---:" if c.justify == "right" else "---" for c in columns) + " |")
    lines += ["| " + " | ".join(plain(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class Report:
    """Prints like the console it wraps, and keeps the tables and notes for ``write``."""

    def __init__(self, console: Console):
        self.console = console
        self.items: list[Table | str] = []

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)
        for item in objects:
            self.items.append(item if isinstance(item, Table) else str(item))

    def write(self, path: str | None, env: Sequence[str] = ()) -> None:
        """The Markdown file at ``path`` (nothing when it is None), its folder made if needed."""
        if path:
            write_markdown(path, self.items, env)


def write_markdown(path: str, items: Iterable[Table | str], env: Sequence[str] = ()) -> None:
    parts = [header(env)]
    for item in items:
        parts.append(markdown_table(item) if isinstance(item, Table) else plain(item) + "\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(parts))
