"""Message wording shared by the rules: lists of step names that stay readable, and bounded."""

from __future__ import annotations

from collections.abc import Iterable

from stepflow.engine.states import CONDITION_FALSE, MATRIX_EMPTY, SUCCESS_SKIPS, StepState

MESSAGE_NAMES_BUDGET = 2000  # characters of step names in one message; the rest are counted



def quoted(names: Iterable[str], limit: int | None = None) -> str:
    """Quoted names as a sentence lists them: "a", "a" and "b", "a", "b" and "c"; ``limit``
    where a list repeats per step. Every name is given (F1) unless they would take more than
    MESSAGE_NAMES_BUDGET characters: a status must stay far below etcd's object limit."""
    names = list(names)
    if limit is None:
        used, limit = 0, 0
        for name in names:
            used += len(name) + 4
            if used > MESSAGE_NAMES_BUDGET:
                break
            limit += 1
    shown = [f'"{n}"' for n in names[:limit]]
    hidden = len(names) - limit if limit is not None else 0
    if hidden > 0:
        shown.append(f"{hidden} more")
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def named_steps(names: list[str], limit: int | None = None) -> str:
    """'step "a"' or 'steps "a" and "b"'."""
    return ("step " if len(names) == 1 else "steps ") + quoted(names, limit)



def why(state: StepState) -> str:
    """A step's reason in parentheses, for messages about it."""
    return f" ({state.reason})" if state.reason else ""


def skip_causes(skips: list[tuple[str, str]]) -> str:
    """What skipped steps of a successful run: conditions (W1), empty lists (M4), or both."""
    one = len(skips) == 1
    names = ((CONDITION_FALSE, "a condition" if one else "conditions"),
             (MATRIX_EMPTY, "an empty list" if one else "empty lists"))
    causes = [what for reason, what in names
              if any(r == reason or (reason == CONDITION_FALSE and r not in SUCCESS_SKIPS) for _, r in skips)]
    return " and ".join(causes) or names[0][1]
