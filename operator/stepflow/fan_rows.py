"""Fan-out in the views (M6): a matrix step's entries arranged for a table, and its copies told.

``status.steps`` holds, for each expanded matrix step, one entry per copy (``matrixOf``,
``matrix``) and one for the whole step (``copies: N``), whose times and phase are its copies'
summed up. A view that drew every entry as a step would count each copy twice, so the views
(``stepflow status``, the local run's table, the timeline) read the entries through
:func:`status_lines`: the whole step as one row, its copies right under it, and beyond
:data:`COPY_ROWS` copies only those worth a look (failed, running) plus one line counting the
rest by phase, so that a 256-copy step stays a screenful. It reads only a status (like the
timeline), never the plan: a ``--report`` file or a CR's status is enough.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepflow.matrix_spec import Axis
from stepflow.printable import printable

TIMES = "\u00d7"  # the multiplication sign: "deploy \u00d74", "build \u00d7(list.services)"
COPY_ROWS = 10  # a matrix step shows at most this many rows of copies, the last one counting the rest
VALUE_CHARACTERS = 40  # of one copy's values as a view shows them; a value may be 1,000s long
FIRST = ("Failed", "Running")  # the copies a folded view shows first: what needs a look now
PHASE_ORDER = ("Failed", "Running", "Pending", "Cancelled", "Skipped", "Succeeded")

Entry = Mapping[str, Any]


@dataclass(frozen=True)
class Line:
    """One row of a view. ``kind``: ``step`` (no matrix), ``whole`` (a matrix step's own entry),
    ``copy`` (one of its copies) or ``more`` (the copies left out, counted in ``hidden``, whose
    :func:`phase_counts` a view shows in its phase column)."""

    name: str
    kind: str
    entry: Entry = field(default_factory=dict)
    hidden: Mapping[str, int] = field(default_factory=dict)  # for ``more``: phase -> copies

    @property
    def label(self) -> str:
        """The name as a view prints it: a copy indented under its step with its values."""
        if self.kind == "copy":
            values = values_text(self.entry.get("matrix") or {})
            return f"  {self.name} ({values})" if values else f"  {self.name}"
        if self.kind == "more":
            return f"  … {more_text(self.hidden)}"
        return self.name


def is_whole(entry: Entry) -> bool:
    """A matrix step's own entry, the sum of its copies (M2): not a step that ran."""
    return isinstance(entry.get("copies"), int)


def values_text(values: Mapping[str, str], limit: int = VALUE_CHARACTERS) -> str:
    """``REGION=eu TIER=a``, each value on one line, cut at ``limit`` characters, and with its
    control characters escaped (:func:`~stepflow.printable.printable`): a value is anyone's text,
    and a terminal would obey an escape sequence among them, in a table or a printed graph."""
    pairs = []
    for name, value in values.items():
        value = str(value).replace("\n", "⏎")
        pairs.append(f"{name}={value if len(value) <= limit else value[:limit - 1] + '…'}")
    return printable(" ".join(pairs))


def copies_text(count: int) -> str:
    return f"{count} copy" if count == 1 else f"{count} copies"


def more_text(hidden: Mapping[str, int]) -> str:
    """``246 more copies``; their phases are :func:`phase_counts`'."""
    total = sum(hidden.values())
    return f"{total} more {'copy' if total == 1 else 'copies'}"


def phase_counts(hidden: Mapping[str, int]) -> str:
    """``240 Succeeded, 6 Pending``: failures first, as in :data:`PHASE_ORDER`."""
    return ", ".join(f"{hidden[p]} {p}" for p in sorted(hidden, key=_phase_rank))


def _phase_rank(phase: str) -> tuple[int, str]:
    return (PHASE_ORDER.index(phase), "") if phase in PHASE_ORDER else (len(PHASE_ORDER), phase)


def worth_showing(names: Sequence[str], phase_of: Mapping[str, str], limit: int) -> list[str]:
    """At most ``limit`` of ``names`` (a step's copies, in copy order), in copy order: all when
    they fit; else the failed and running ones first, then the first others."""
    if len(names) <= limit:
        return list(names)
    first = [n for n in names if phase_of.get(n) in FIRST][:limit]
    rest = [n for n in names if phase_of.get(n) not in FIRST][:limit - len(first)]
    chosen = set(first + rest)
    return [n for n in names if n in chosen]


def status_lines(steps: Mapping[str, Entry], every_copy: bool = False,
                 limit: int = COPY_ROWS) -> list[Line]:
    """The rows of ``status.steps`` in document order: a matrix step's own entry, then its
    copies (all with ``every_copy``, else at most ``limit`` rows of them, see
    :func:`worth_showing`). A copy whose step has no entry (a status written by hand) is a row
    of its own."""
    wholes = {name for name, entry in steps.items() if is_whole(entry)}
    copies: dict[str, list[str]] = {}
    for name, entry in _by_index(steps):
        if entry.get("matrixOf") in wholes:
            copies.setdefault(entry["matrixOf"], []).append(name)
    lines: list[Line] = []
    for name, entry in _by_index(steps):
        if entry.get("matrixOf") in wholes:
            continue  # listed under its step
        if name not in wholes:
            lines.append(Line(name, "copy" if entry.get("matrixOf") else "step", entry))
            continue
        lines.append(Line(name, "whole", entry))
        members = copies.get(name, [])
        phases = {n: steps[n].get("phase", "Pending") for n in members}
        shown = members if every_copy or len(members) <= limit else worth_showing(members, phases,
                                                                                  limit - 1)
        lines.extend(Line(n, "copy", steps[n]) for n in shown)
        if len(shown) < len(members):
            hidden = Counter(phases[n] for n in members if n not in set(shown))
            lines.append(Line(name, "more", hidden=dict(hidden)))
    return lines


def _by_index(steps: Mapping[str, Entry]) -> list[tuple[str, Entry]]:
    """Document order; a matrix step's own entry has its first copy's index and comes first."""
    return sorted(steps.items(), key=lambda kv: (kv[1].get("index", 0), not is_whole(kv[1])))


def ran(steps: Mapping[str, Entry]) -> Iterable[tuple[str, Entry]]:
    """The entries of steps that run: every entry but the wholes of matrix steps, which would
    count each copy a second time (in a sum of step times, say)."""
    return ((name, entry) for name, entry in steps.items() if not is_whole(entry))


def source_text(axes: Sequence[Axis]) -> str:
    """What a matrix fans out over, before it is expanded: ``list.services``, and the sizes of
    the lists written beside it (``list.services``, times sign, ``2``)."""
    return f" {TIMES} ".join(f"{a.source[0]}.{a.source[1]}" if a.source is not None
                             else str(len(a.values or ())) for a in axes)


def fan_out_text(axes: Sequence[Axis]) -> str:
    """The same for a sentence: ``fan-out over output services of list``."""
    parts = [f"output {a.source[1]} of {a.source[0]}" if a.source is not None
             else f"{a.name} ({len(a.values or ())} values)" for a in axes]
    return "fan-out over " + f" {TIMES} ".join(parts)
