"""Finding the repo's test command (pytest, npm test, go test, cargo test) and running it with bounded output."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastcode.events import TestsRun
from fastcode.tools.shell import run_command

if TYPE_CHECKING:
    from fastcode.emitter import Emitter


@dataclass(frozen=True)
class TestResult:
    command: str
    exit_code: int | None
    passed: bool
    output: str
    ms: float


def detect_test_command(root: Path) -> str | None:
    """The usual test command for this repo's ecosystem, or None when nothing says how to test it."""
    if (root / "package.json").is_file():
        try:
            scripts = json.loads((root / "package.json").read_text(encoding="utf-8")).get("scripts", {})
        except (json.JSONDecodeError, OSError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and scripts.get("test"):
            return "npm test --silent"
    if (root / "go.mod").is_file():
        return "go test ./..."
    if (root / "Cargo.toml").is_file():
        return "cargo test -q"
    markers = ("pytest.ini", "conftest.py", "tox.ini", "setup.cfg", "pyproject.toml", "setup.py")
    if (
        any((root / m).is_file() for m in markers)
        or any(root.glob("test*/**/test_*.py"))
        or any(root.glob("test_*.py"))
    ):
        # `python -m pytest` puts the repo root on sys.path, as a project's own imports usually expect.
        return f"{'python' if shutil.which('python') else 'python3'} -m pytest -x -q"
    return None


async def run_tests_traced(
    command: str, root: Path, emit: Emitter, *, timeout_s: float, select: list[str] | None = None
) -> TestResult:
    """Run the tests and put a TestsRun event (with the output's tail) in the trace."""
    result = await run_tests(command, root, timeout_s=timeout_s, select=select)
    emit(TestsRun, command=result.command, exit_code=result.exit_code, passed=result.passed, ms=result.ms,
         output_tail=result.output[-2000:])  # fmt: skip
    return result


async def run_tests(
    command: str, root: Path, *, timeout_s: float = 300.0, max_chars: int = 12_000, select: list[str] | None = None
) -> TestResult:
    if select and "pytest" in command:  # lead's stand-in until the warm runner lands: node ids appended
        import shlex

        command = f"{command} {' '.join(shlex.quote(node) for node in select)}"
    started = time.perf_counter()
    exit_code, output = await run_command(command, root, timeout_s=timeout_s, max_chars=max_chars)
    ms = round((time.perf_counter() - started) * 1000, 2)
    return TestResult(command, exit_code, exit_code == 0, output, ms)
