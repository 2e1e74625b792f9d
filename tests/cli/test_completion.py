"""``stepflow completion bash|zsh|fish``: the printed scripts load in their shell and complete.

Mirror: ``operator/stepflow/cli/completion.py``. Bash is on every machine that runs the suite, so
its script is sourced and asked for completions as bash would ask. zsh and fish are checked by
their own parser and (fish) its completion engine where they are installed, and always for what
the script must declare.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from stepflow.cli import build_parser

STEPFLOW = str(Path(sys.executable).with_name("stepflow"))


def completion(shell: str) -> str:
    done = subprocess.run([STEPFLOW, "completion", shell], capture_output=True, text=True, check=True)
    return done.stdout


def commands() -> list[str]:
    """Every subcommand of the parser that runs them, completion included."""
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return list(subparsers.choices)


def bash_completes(script: Path, *words: str) -> list[str]:
    """What bash offers for the last of ``words``, as the shell asks a ``complete -F`` function."""
    words_array = " ".join(f"'{w}'" for w in words)
    program = f"""
        source {script}
        fn=$(complete -p stepflow | sed -E 's/.*-F ([^ ]+).*/\\1/')
        COMP_WORDS=({words_array}); COMP_CWORD={len(words) - 1}
        COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
        "$fn" stepflow '{words[-1]}' '{words[-2]}'
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_bash_script_is_valid_and_completes_commands_options_and_choices(tmp_path):
    script = tmp_path / "stepflow.bash"
    script.write_text(completion("bash"))
    subprocess.run(["bash", "-n", str(script)], check=True)

    assert sorted(bash_completes(script, "stepflow", "")) == sorted(commands())
    assert bash_completes(script, "stepflow", "val") == ["validate"]
    assert bash_completes(script, "stepflow", "plan", "-o", "") == ["text", "json", "mermaid", "dot"]
    assert bash_completes(script, "stepflow", "completion", "") == ["bash", "zsh", "fish"]
    assert "--all-namespaces" in bash_completes(script, "stepflow", "ui", "--")


def test_bash_completes_file_arguments_with_file_names(tmp_path):
    script = tmp_path / "stepflow.bash"
    script.write_text(completion("bash"))
    (tmp_path / "deploy.yaml").write_text("kind: Workflow\n")
    program = f"""
        cd {tmp_path}
        source {script}
        COMP_WORDS=(stepflow validate dep); COMP_CWORD=2; COMP_LINE="stepflow validate dep"
        COMP_POINT=${{#COMP_LINE}}
        _shtab_stepflow stepflow dep validate
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["deploy.yaml"]


def test_zsh_script_declares_every_command_and_parses(tmp_path):
    text = completion("zsh")
    assert text.startswith("#compdef stepflow")
    for command in commands():
        assert f"\n        {command}) _arguments" in text, command
    if shutil.which("zsh"):  # the shell's own parser, where zsh is installed
        script = tmp_path / "_stepflow"
        script.write_text(text)
        subprocess.run(["zsh", "-n", str(script)], check=True)


def test_fish_script_declares_every_command_and_completes_in_fish(tmp_path):
    text = completion("fish")
    for command in commands():
        assert f"-a {command} -d" in text, command
    if shutil.which("fish"):  # the shell's own parser and completion engine, where fish is installed
        script = tmp_path / "stepflow.fish"
        script.write_text(text)
        subprocess.run(["fish", "--no-execute", str(script)], check=True)
        done = subprocess.run(["fish", "-c", f"source {script}; complete -C 'stepflow completion '"],
                              capture_output=True, text=True, check=True)
        assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["bash", "zsh", "fish"]


def test_an_unknown_shell_is_a_usage_error_with_exit_code_2():
    done = subprocess.run([STEPFLOW, "completion", "tcsh"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "invalid choice: 'tcsh'" in done.stderr
    assert done.stdout == ""

