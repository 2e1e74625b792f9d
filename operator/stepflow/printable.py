"""Text from a workflow, a step or its outputs, made safe for a terminal.

A step's message, termination message and outputs are whatever the step wrote, and a file's
values are whatever its author typed: an escape sequence among them (``\\x1b[2J``, a title, a
hyperlink, a carriage return that rewrites the line, a bidirectional override) would be obeyed
by the terminal that prints it. Every such character is shown as its escape instead; line feeds
and tabs stay.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with each control character written as an escape: ``\\x1b``, ``\\u202e``."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
