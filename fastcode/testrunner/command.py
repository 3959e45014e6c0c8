"""Is a test command a plain pytest run, and with which interpreter?

Owns the parsing: `python -m pytest ARGS`, `python3.12 -m pytest ARGS`, `.venv/bin/python -m pytest ARGS`, `pytest
ARGS` (the interpreter from the script's `#!` line) with plain arguments. Anything the shell would interpret
(pipes, `&&`, `;`, redirections, variables, globs, env assignments) or any other program is not one: those run as a
subprocess, as the shell would run them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

_SHELL_CHARS = set("|&;<>()$`\\*?[]{}~#!\n")
_PYTHON = re.compile(r"python(?:\d+(?:\.\d+)?)?")


@dataclass(frozen=True)
class Invocation:
    """How to reproduce `command` inside a warm runner."""

    python: tuple[str, ...]
    """argv prefix that starts the command's interpreter (the resolved `python`, or the script's `#!` line)."""
    args: tuple[str, ...]
    """pytest's arguments."""
    script: str = ""
    """The `pytest` console script when the command runs it directly ("" for `python -m pytest`)."""


def _which(name: str, root: Path) -> str | None:
    if "/" in name:
        path = Path(name) if Path(name).is_absolute() else root / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name, path=os.environ.get("PATH", os.defpath))


def _shebang(script: str, root: Path) -> tuple[str, ...] | None:
    """The interpreter argv of a Python console script's `#!` line (None when it is not a plain python)."""
    try:
        with open(script, "rb") as file:
            first = file.readline(512).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if len(words) == 1 and _PYTHON.fullmatch(os.path.basename(words[0])):
        return (words[0],)
    if len(words) == 2 and os.path.basename(words[0]) == "env" and _PYTHON.fullmatch(words[1]):
        found = _which(words[1], root)
        return (found,) if found else None
    return None


def pytest_invocation(command: str, root: Path) -> Invocation | str:
    """The Invocation for a plain pytest command, else why it is not one ("" when it is not pytest at all)."""
    is_pytest = "pytest" in command or "py.test" in command
    if any(c in _SHELL_CHARS for c in command):
        return "the test command uses shell syntax" if is_pytest else ""
    try:
        words = shlex.split(command)
    except ValueError:
        return "the test command does not parse" if is_pytest else ""
    if not words or not is_pytest:
        return ""
    if "=" in words[0]:
        return "the test command sets environment variables"
    if any(arg.startswith("--assert") for arg in [*words, *os.environ.get("PYTEST_ADDOPTS", "").split()]):
        return "the test command sets pytest's assertion mode"  # the runner imports plugins with rewriting on
    program = os.path.basename(words[0])
    if _PYTHON.fullmatch(program):
        if words[1:3] != ["-m", "pytest"]:
            return "the test command passes options to python"
        python = _which(words[0], root)
        return Invocation((python,), tuple(words[3:])) if python else f"{words[0]} is not on PATH"
    if program in ("pytest", "py.test"):
        script = _which(words[0], root)
        if not script:
            return f"{words[0]} is not on PATH"
        interpreter = _shebang(script, root)
        if interpreter is None:
            return f"cannot tell which python runs {script}"
        return Invocation(interpreter, tuple(words[1:]), script=script)
    return "the test command is not `python -m pytest` or `pytest`"
