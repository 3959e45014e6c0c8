"""What the sandbox costs: one command through the `run` tool's path with and without it, and the case study's
test run (warm runner and subprocess) confined and not."""

from __future__ import annotations

import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastcode.bench.case_study import make_case_repo
from fastcode.core.config import SandboxSection
from fastcode.sandbox.policy import Sandbox
from fastcode.tools.shell import execute_command

Row = tuple[str, str, str, bool | None]


async def _command_ms(root: Path, sandbox: Sandbox | None, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await execute_command("true", root, timeout_s=30, max_chars=1000, sandbox=sandbox)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _tests_ms(root: Path, sandbox: Sandbox | None, runner: str, runs: int) -> float:
    from fastcode.context import testcmd

    command = f"{shlex.quote(sys.executable)} -m pytest -x -q"
    testcmd.prestart(command, root, runner=runner, sandbox=sandbox)
    await testcmd.run_tests(command, root)  # the runner's start is not counted
    return statistics.median([(await testcmd.run_tests(command, root)).ms for _ in range(runs)])


def rows(runs: int) -> list[Row]:
    from fastcode.context import testcmd

    box = Sandbox.from_settings(SandboxSection())
    if not box.active:
        return [("sandbox per command", "not enforced here", "<= 10 ms", None)]
    n = max(20, runs * 4)
    with tempfile.TemporaryDirectory(prefix="fastcode-bench-sandbox-") as tmp:
        root = make_case_repo(Path(tmp) / "case")
        try:
            plain, confined = (asyncio.run(_command_ms(root, s, n)) for s in (None, box))
            tests = {(r, s is not None): asyncio.run(_tests_ms(root, s, r, max(5, runs * 2)))
                     for r in ("auto", "subprocess") for s in (None, box)}  # fmt: skip
        finally:
            testcmd.shutdown()
            box.close()
    overhead = confined - plain
    return [
        (f"sandbox per command (`true`, {box.support.describe()})",
         f"+{overhead:.1f} ms ({plain:.1f} → {confined:.1f})", "<= 10 ms", overhead <= 10),
        ("test run warm, unconfined / sandboxed (case study)",
         f"{tests['auto', False]:.0f} / {tests['auto', True]:.0f} ms", "no regression", None),
        ("test run subprocess, unconfined / sandboxed",
         f"{tests['subprocess', False]:.0f} / {tests['subprocess', True]:.0f} ms", "no regression", None),
    ]  # fmt: skip
