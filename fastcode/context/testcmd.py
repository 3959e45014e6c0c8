"""Finding the repo's test command (pytest, npm test, go test, cargo test) and running it with bounded output.

A plain pytest command runs in a warm runner (`fastcode.testrunner`: pytest and its plugins already imported, each
run a forked child; kept alive between fastcode processes for `agent.test_runner_keep_alive`) unless
`agent.test_runner = "subprocess"`; anything else, or any failure of the runner, runs it
as a subprocess with the same result. `prestart` starts the runner early (and says which sandbox confines the
runs); `shutdown` stops every runner.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastcode.core.events import TestsRun
from fastcode.core.secrets import mask
from fastcode.testrunner import pool
from fastcode.testrunner.client import RunnerError
from fastcode.testrunner.command import Invocation, pytest_invocation
from fastcode.tools.shell import run_command

if TYPE_CHECKING:
    from fastcode.core.emitter import Emitter
    from fastcode.sandbox.policy import Sandbox


@dataclass(frozen=True)
class TestResult:
    command: str
    exit_code: int | None
    passed: bool
    output: str
    ms: float
    runner: str = "subprocess"
    """"warm" (a child of the warm runner) or "subprocess"."""
    note: str = ""
    """Why a pytest command ran as a subprocess instead of warm ("" when it did not fall back)."""


_modes: dict[Path, str] = {}
"""Repo root -> `agent.test_runner` as `prestart` was told ("auto" when it was not called)."""
_sandboxes: dict[Path, tuple[Sandbox, dict[str, Any]]] = {}
"""Repo root -> the sandbox its test runs are confined by and the spec that confines its warm runner, as `prestart`
was told (none when it was not called, or the sandbox is not enforced)."""


def prestart(
    command: str,
    root: Path,
    *,
    runner: str = "auto",
    keep_alive_s: float = pool.DEFAULT_KEEP_ALIVE_S,
    sandbox: Sandbox | None = None,
) -> None:
    """Start the warm runner for this repo's pytest command now, while the run does other work, so the first test
    run finds pytest and its plugins imported. `runner` is `agent.test_runner` ("subprocess": never use one for
    this root). `keep_alive_s` is `agent.test_runner_keep_alive`: the runner outlives this process until that long
    without a request, and later fastcode processes reuse it (0: it exits with this process). Returns at once,
    never raises, does nothing for other commands; a live runner is reused, so call it at the start of every run."""
    root = root.resolve()
    _modes[root] = runner
    confine = sandbox.runner_spec(root) if sandbox is not None and sandbox.active else None
    if sandbox is not None and confine is not None:
        _sandboxes[root] = (sandbox, confine)
    else:
        _sandboxes.pop(root, None)
    pool.keep_alive[root] = keep_alive_s
    if runner != "subprocess" and command and isinstance(invocation := pytest_invocation(command, root), Invocation):
        pool.prestart(invocation, root, confine)


def shutdown() -> None:
    """Stop this process's warm runners (they also exit when it dies); kept-alive ones stay up until idle."""
    pool.shutdown()


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
    command: str,
    root: Path,
    emit: Emitter,
    *,
    timeout_s: float,
    select: list[str] | None = None,
    copy: Path | None = None,
    step: int = 0,
) -> TestResult:
    """Run the tests and put a TestsRun event (with the output's tail) in the trace; `step`: the step whose edit they
    check (0: gathering context, before the first step)."""
    result = await run_tests(command, root, timeout_s=timeout_s, select=select, copy=copy)
    emit(TestsRun, command=result.command, exit_code=result.exit_code, passed=result.passed, ms=result.ms,
         output_tail=result.output[-2000:], runner=result.runner, note=result.note, step=step)  # fmt: skip
    return result


async def run_tests(
    command: str,
    root: Path,
    *,
    timeout_s: float = 300.0,
    max_chars: int = 12_000,
    select: list[str] | None = None,
    copy: Path | None = None,
) -> TestResult:
    """Run the test command (warm when it is a plain pytest command); `select`: pytest node ids to run instead of
    the command's default selection (ignored for other test commands). `copy`: a copy of the repository at `root`
    to run them in instead (its `src/` first on the import path, ahead of an editable install of the original)."""
    cwd, path = copy or root, []
    if copy is not None and (copy / "src").is_dir():
        path = [str(copy / "src")]
    started = time.perf_counter()
    shown = command
    if select and "pytest" in command:
        shown = f"{command} {' '.join(shlex.quote(node) for node in select)}"
    invocation, note = pytest_invocation(command, root), ""
    sandbox, runner_spec = _sandboxes.get(root.resolve(), (None, None))
    run_spec = sandbox.spec(cwd, nested=True) if sandbox is not None else None
    if isinstance(invocation, str):
        note = invocation
    elif _modes.get(root.resolve(), "auto") != "subprocess":
        try:
            args = [*invocation.args, *(select or [])]
            warm = await pool.run(invocation, root.resolve(), args, timeout_s=timeout_s, max_chars=max_chars,
                                  cwd=cwd, path=path, sandbox=run_spec, confine=runner_spec)  # fmt: skip
            return _result(shown, warm.exit_code, warm.body(), started, "warm", "")
        except RunnerError as exc:
            note = str(exc)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [*path, os.environ.get("PYTHONPATH")]))} if path else None
    try:
        exit_code, output = await run_command(shown, cwd, timeout_s=timeout_s, max_chars=max_chars, env=env,
                                              sandbox=sandbox)  # fmt: skip
    except subprocess.SubprocessError as exc:  # the sandbox could not be applied in the child
        exit_code, output = 126, f"not run: the sandbox could not be applied ({exc})"
    return _result(shown, exit_code, output, started, "subprocess", note)


def _result(command: str, exit_code: int | None, output: str, started: float, runner: str, note: str) -> TestResult:
    ms = round((time.perf_counter() - started) * 1000, 2)
    return TestResult(command, exit_code, exit_code == 0, mask(output), ms, runner, note)
