"""Data flow (O4, W2): a step reads only declared outputs of steps sure to have finished, and
only a finally step reads ``workflow.failed`` (the main steps' outcome, final once they are over).

Every ``stepOutput`` and every ``when`` may read outputs of the step's prerequisites only, so the
values it reads are final when it starts; a reference to any other step is an error at
validation, not a race at run time. "A prerequisite" is defined by the waits-for graph
(:mod:`stepflow.waits`), so these checks run once that graph is sound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepflow.conditions import Condition, ConditionSyntaxError, compile_condition
from stepflow.env_values import carriers, container_env, references
from stepflow.spec import FieldError, Step, step_output_source
from stepflow.waits import close_match, post_order, wait_edges

if TYPE_CHECKING:
    from stepflow.plan import Plan


def data_errors(plan: Plan) -> tuple[list[FieldError], dict[str, Condition]]:
    """Every ``stepOutput`` and ``when`` must read declared outputs of prerequisites only, so the
    values they read are final; returns the errors and the compiled conditions."""
    # A step that reads no output may still paste a param into its script (T3).
    errors = [e for s in plan.steps if s.literals and not s.output_sources
              for e in _substitution_errors(plan, s)]
    fanned = [s for s in plan.steps if any(a.source for a in s.matrix)]
    readers = [s for s in plan.steps if s.when is not None or s.output_sources]
    if not readers and not fanned:
        return errors, {}
    before = _Ancestry(plan)
    errors += [e for s in fanned for e in _matrix_source_errors(plan, before, s)]
    conditions: dict[str, Condition] = {}
    for step in readers:
        for i, var in enumerate(step.env):
            source = step_output_source(var)
            if source is not None:
                path = f"{step.path}.env[{i}].valueFrom.stepOutput"
                errors.extend(_read_error(plan, before, step, *source, path, "reads"))
        errors.extend(_substitution_errors(plan, step))
        if step.when is None:
            continue
        try:
            condition = compile_condition(step.when)
        except ConditionSyntaxError as exc:
            errors.append(FieldError(f"{step.path}.when", f'step "{step.name}": when {exc}'))
            continue
        found = [e for ref in condition.references
                 for e in _read_error(plan, before, step, ref.step, ref.output, f"{step.path}.when",
                                      "reads (in when)")]
        if condition.reads_workflow_failed and not step.final:
            found.append(FieldError(f"{step.path}.when", (
                f'step "{step.name}" reads workflow.failed, which only a finally step may read: in a main '
                "step it would depend on timing (whether an unrelated step has failed yet); read a "
                "prerequisite's phase instead, such as steps['build'].phase == 'Failed'")))
        errors.extend(dict.fromkeys(found))
        conditions[step.name] = condition
    return errors, conditions


def _matrix_source_errors(plan: Plan, before: _Ancestry, step: Step) -> list[FieldError]:
    """M4: a list from an output reads a declared output of a prerequisite, as O4."""
    return [e for axis in step.matrix if axis.source is not None
            for e in _read_error(plan, before, step, *axis.source,
                                 f"{step.path}.matrix.{axis.name}.fromOutput", "fans out over")]


def _read_error(plan: Plan, before: _Ancestry, step: Step, source: str, output: str | None, path: str,
                verb: str) -> list[FieldError]:
    """The error of one read, if any: an unknown step, a step not sure to have finished, or an
    output it does not declare; a list, so that callers can extend with it."""
    label = f'step "{step.name}"'
    producer = plan.step_by_name.get(source)
    if producer is None:
        hint = close_match(source, set(plan.step_by_name))
        return [FieldError(path, f'{label} {verb} unknown step "{source}"{hint}')]
    if not before.precedes(source, step.name):
        why = "a finally step: it runs after the main steps" if producer.final and not step.final else (
            "which is not a prerequisite of it (through dependsOn or the group barriers)")
        return [FieldError(path, f'{label} {verb} step "{source}", {why}; only a prerequisite '
                                 "is sure to have finished")]
    if output is not None and output not in producer.outputs:
        declared = ", ".join(producer.outputs) or "none"
        return [FieldError(path, f'{label} {verb} output "{output}" of step "{source}", which does not '
                                 f"declare it (its outputs: {declared})")]
    return []


def _substitution_errors(plan: Plan, step: Step) -> list[FieldError]:
    """O3 and T3: Kubernetes expands ``$(VAR)`` in command, args and script before the shell sees
    them, so a value read that way would be pasted into the command line: shell injection. The
    check reads each place as Kubernetes does (``$$$(VAR)`` is ``$`` then ``$(VAR)``), and follows
    a value into every variable whose value refers to it (``MSG: "PR: $(TITLE)"``).

    An output may reach none of those places. A param (T3) may reach a command or its args, which
    no shell reads (``--target=$(TARGET)``), but not a script: stepflow's ``script``, or the text
    after ``-c`` of a shell the command runs."""
    literals = step.literals
    if not step.output_sources and not literals:
        return []
    env = container_env(literals, "", plan.spec.defaults.env, step.env)
    from_outputs = carriers(env, [variable for variable, _, _ in step.output_sources])
    from_params = carriers(env, list(literals))
    places = [("script", step.script or "")] + [(f"command[{i}]", c) for i, c in enumerate(step.command)]
    places += [(f"args[{i}]", a) for i, a in enumerate(step.args)]
    shell_code = {"script", *_code_places(step)}
    errors = []
    for where, text in places:
        for name in dict.fromkeys(references(text)):
            chain, what = from_outputs.get(name), "the output read by"
            if chain is None and where in shell_code:
                chain = from_params.get(name)
                what = "the param" if chain is None or chain[0] in step.params else "the matrix value"
            if chain is None:
                continue
            through = "" if len(chain) == 1 else (
                f", whose value holds {what} $({chain[0]}) ({' -> '.join(chain)})")
            pasted = {"the output read by": "a step's output into the command",
                      "the param": "a param's value into shell code, where it would run",
                      "the matrix value": "a matrix value into shell code, where it would run"}[what]
            label = f'step "{step.name}"' + (f' (type "{step.type}")' if step.type else "")
            errors.append(FieldError(f"{step.path}.{where}", (
                f'{label} uses $({name}){through}, which would paste {pasted}; read it as '
                f'"${name}" in the shell instead')))
    return errors


# Programs that run code given on their command line, and the options that take it: a param
# there would be code, as in a script. Names match with any version suffix (python3.11, bash5).
CODE_OPTIONS = {
    **dict.fromkeys(("sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"), ("c",)),
    "python": ("c",), "node": ("e", "p", "-eval", "-print"), "perl": ("e", "E"), "ruby": ("e",),
    "php": ("r",), "lua": ("e",), "pwsh": ("c", "Command", "EncodedCommand"),
}


def _code_places(step: Step) -> list[str]:
    """Where a command that runs an interpreter has code of its command line: the word after
    ``-c`` of a shell (``[sh, -c, CODE]``, ``[bash, -euc, CODE]``), ``-e`` of perl, and so on, in
    command or args."""
    words = [(f"command[{i}]", c) for i, c in enumerate(step.command)]
    words += [(f"args[{i}]", a) for i, a in enumerate(step.args)]
    program = words[0][1].rsplit("/", 1)[-1].rstrip("0123456789.") if words else ""
    options = CODE_OPTIONS.get(program)
    if options is None:
        return []
    places = []
    for i, (_, word) in enumerate(words[1:], start=1):
        if not word.startswith("-") or word == "--":
            break  # a script file: what follows are its arguments, which it reads as data
        flag = word[1:]
        takes_code = flag in options or (
            not flag.startswith("-") and len(options[0]) == 1 and options[0] in flag)  # -euc
        if takes_code and i + 1 < len(words):
            places.append(words[i + 1][0])
            break
    return places


class _Ancestry:
    """Which steps are sure to have finished before a step starts: its prerequisites,
    transitively, through dependsOn and barriers; for a finally step also every main step.
    Ancestor sets are bitsets built in one topological pass, linear in edges times n/64."""

    def __init__(self, plan: Plan) -> None:
        self._bits: dict[str, int] = {}
        self._bit: dict[str, int] = {}
        main, final = plan.parts
        every_main = 0
        for part in (main, final):
            if part is None:
                continue
            edges = wait_edges(part.steps, part.groups)
            for node in post_order(edges):
                waits = edges[node]
                bits = 0
                for upstream in waits:
                    bits |= self._bits[upstream] | self._bit.get(upstream, 0)
                if not node.startswith("#"):
                    self._bit[node] = 1 << len(self._bit)
                    if part is final:
                        bits |= every_main
                self._bits[node] = bits
            if part is main:
                every_main = sum(self._bit.values())
            for g in range(len(part.groups)):
                del self._bits[f"#{g}"]  # group nodes are per part; the next part reuses the names

    def precedes(self, producer: str, consumer: str) -> bool:
        return bool(self._bits[consumer] & self._bit[producer])

