"""run: exit codes, merged output, timeouts that kill the process group, bounded output, cancellation."""

from __future__ import annotations

import asyncio
import json
import os
import time
import tracemalloc
from pathlib import Path

import pytest

from fastcode.tools import ToolContext, execute
from fastcode.tools.shell import run_command


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


async def run(ctx: ToolContext, command: str, **extra: object) -> str:
    return (await execute("run", json.dumps({"command": command, **extra}), ctx)).output


def gone(pid: int) -> bool:
    """The process no longer exists (or is a zombie waiting for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def test_exit_code_and_merged_output_in_repo_root(repo: Path) -> None:
    calls: list[Path | None] = []
    ctx = ToolContext(root=repo, before_write=calls.append, env={"GREETING": "hi"})
    out = await run(ctx, 'pwd; echo "$GREETING"; echo oops >&2; cat; exit 3')
    assert out == f"exit code 3\n{repo}\nhi\noops"
    assert calls == [None]
    assert await run(ctx, "true") == "exit code 0\n(no output)"


async def test_timeout_kills_the_process_group(repo: Path) -> None:
    started = time.monotonic()
    out = await run(ToolContext(root=repo), "sleep 30 & echo $!; sleep 30", timeout_s=1)
    assert time.monotonic() - started < 5
    head, pid = out.splitlines()
    assert head == "timed out after 1 s; the command and its child processes were killed"
    for _ in range(50):
        if gone(int(pid)):
            break
        await asyncio.sleep(0.02)
    assert gone(int(pid))


async def test_huge_output_stays_bounded(repo: Path) -> None:
    ctx = ToolContext(root=repo, max_output_chars=4_000)
    tracemalloc.start()
    try:
        out = await run(ctx, "yes | head -c 50000000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert out.startswith("exit code 0\n[... 49996000 bytes of earlier output dropped; showing the end]\ny\ny")
    assert len(out) < 4_200


async def test_background_child_holding_the_pipe_does_not_hang(repo: Path) -> None:
    started = time.monotonic()
    out = await run(ToolContext(root=repo), "sleep 30 & echo started")
    assert time.monotonic() - started < 3
    assert out == "exit code 0\n[background processes still holding the output were killed]\nstarted"


async def test_detached_background_process_survives(repo: Path) -> None:
    out = await run(ToolContext(root=repo), "sleep 30 >/dev/null 2>&1 & echo $!")
    pid = int(out.splitlines()[1])
    try:
        assert not gone(pid)
    finally:
        os.kill(pid, 9)


async def test_cancelling_kills_the_command(repo: Path) -> None:
    task = asyncio.create_task(run(ToolContext(root=repo), "echo $$ > pid; sleep 30"))
    for _ in range(100):
        if (repo / "pid").is_file() and (repo / "pid").read_text().strip():
            break
        await asyncio.sleep(0.02)
    pid = int((repo / "pid").read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if gone(pid):
            break
        await asyncio.sleep(0.02)
    assert gone(pid)


async def test_run_command_helper(repo: Path) -> None:
    assert await run_command("echo hi", repo) == (0, "hi")
    code, output = await run_command("echo partial; sleep 30", repo, timeout_s=0.3)
    assert code is None
    assert output == "partial"
