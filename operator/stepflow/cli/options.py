"""Option values checked in the user's words: argparse names a type function in its message
(``invalid _positive_int value: 'abc'``), so each type here raises its own, and a usage error
exits 2 with the usage, as argparse does."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


def whole_number(minimum: int) -> Callable[[str], int]:
    """A type for ``N >= minimum``: ``expected a whole number >= 1, got 'abc'``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def seconds(text: str) -> float:
    """A duration in seconds, more than zero: ``15`` or ``2.5``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def pool_limit(text: str) -> tuple[str, int]:
    """``NAME=LIMIT``, such as ``prod-deploys=1``."""
    name, equals, limit = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=LIMIT, such as prod-deploys=1")
    try:
        return name, whole_number(1)(limit)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r}: the limit must be a whole number >= 1") from None


class OncePerName(argparse.Action):
    """A repeatable ``NAME=VALUE`` option that refuses a second value for one name, where
    ``append`` would quietly keep the last (``--pool p=1 --pool p=3``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option: str | Sequence[Any] | None = None) -> None:
        name, value = values
        given = dict(getattr(namespace, self.dest) or [])
        if name in given:
            parser.error(f"{option} {name}={value}: {name} was given already ({name}={given[name]}); "
                         "give each name once")
        setattr(namespace, self.dest, [*given.items(), (name, value)])
