"""The run tool: a shell command in the repo root, with a timeout that kills its whole process group.

Owns process lifetime (own session; SIGTERM then SIGKILL to the group on timeout or cancellation; a watchdog that
kills the group when fastcode itself dies, SIGKILL included) and bounded output: only the last `max_output_chars`
bytes of combined stdout/stderr are ever held in memory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from fastcode.core.secrets import child_environ
from fastcode.tools.base import ToolArgs, ToolContext, ToolResult, register

if TYPE_CHECKING:
    from fastcode.sandbox.policy import Sandbox

_TERM_GRACE_S = 2.0
"""After SIGTERM, how long the command gets to exit before SIGKILL."""
_DRAIN_GRACE_S = 0.5
"""After the shell exits, how long background children may hold its output pipe before they are killed."""


class _Tail:
    """The last `limit` bytes written, and how many earlier bytes were dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 1)
        self.buffer = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.buffer += chunk
        excess = len(self.buffer) - self.limit
        if excess > 0:
            del self.buffer[:excess]
            self.dropped += excess

    def text(self) -> str:
        text = self.buffer.decode("utf-8", errors="replace")
        return text.lstrip("\ufffd") if self.dropped else text


class _Collector(asyncio.SubprocessProtocol):
    """Feeds the output into a `_Tail` as it arrives; futures for "output closed" and "shell exited".

    (Not asyncio's `Process.wait()`: it also waits for the pipes to close, which background children delay.)
    """

    def __init__(self, tail: _Tail) -> None:
        loop = asyncio.get_running_loop()
        self.tail = tail
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.tail.add(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Watchdog:
    """Kills a command's process group if fastcode dies while it runs, however it dies.

    A tiny `sh` in its own session blocks reading a pipe whose only write end fastcode holds. A kill of fastcode
    (SIGKILL too) closes that end: `read` sees end-of-file and the group is killed. When the command ends
    normally, fastcode writes `done` first and the watchdog exits without killing. (Linux's parent-death signal
    would reach only the shell itself, not the commands and test processes it started.)
    """

    def __init__(self, pgid: int) -> None:
        read_end, self.write_end = os.pipe()  # not inheritable: no other child holds the write end
        script = f'read line; [ "$line" = done ] || kill -9 -{pgid} 2>/dev/null'
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                ["/bin/sh", "-c", script], stdin=read_end, start_new_session=True, env={"PATH": os.defpath}
            )
        except OSError:
            self.proc = None
        finally:
            os.close(read_end)

    def release(self) -> None:
        """The command is over: let the watchdog go without killing."""
        with suppress(OSError):
            os.write(self.write_end, b"done\n")
        os.close(self.write_end)
        if self.proc is not None:
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)


async def _kill_group(pgid: int, exited: asyncio.Future[None]) -> None:
    """SIGTERM the command's process group, then SIGKILL whatever is left."""
    _signal_group(pgid, signal.SIGTERM)
    await asyncio.wait({exited}, timeout=_TERM_GRACE_S)
    _signal_group(pgid, signal.SIGKILL)
    await asyncio.wait({exited}, timeout=_TERM_GRACE_S)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    """None when the command timed out and was killed."""
    output: str
    """The end of the combined stdout/stderr."""
    dropped_bytes: int
    killed_leftovers: bool
    """Background processes still holding the output pipe after the shell exited were killed."""

    def body(self) -> str:
        """The output, preceded by notes on what was dropped or killed."""
        notes = []
        if self.killed_leftovers:
            notes.append("[background processes still holding the output were killed]")
        if self.dropped_bytes:
            notes.append(f"[... {self.dropped_bytes} bytes of earlier output dropped; showing the end]")
        output = self.output.rstrip("\n") if self.output.strip() else "(no output)"
        return "\n".join([*notes, output])


async def execute_command(
    command: str,
    root: Path,
    *,
    timeout_s: float,
    max_chars: int,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> CommandResult:
    """Run `command` with /bin/sh in `root` (own session, stdin /dev/null), keeping the last `max_chars` bytes
    of output; at `timeout_s` its process group is killed. With a `sandbox`, the child confines itself just
    before exec (and never runs unconfined: a sandbox that cannot be applied is a failed command)."""
    tail = _Tail(max_chars)
    preexec = sandbox.preexec(root) if sandbox is not None else None
    if sandbox is not None and sandbox.active:
        env = {**sandbox.environ(), **(env or {})}
    transport, collector = await asyncio.get_running_loop().subprocess_exec(
        lambda: _Collector(tail),
        "/bin/sh",
        "-c",
        command,
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=child_environ(env),
        preexec_fn=preexec,
    )
    pgid = transport.get_pid()
    watchdog = _Watchdog(pgid)
    timed_out = leftovers = False
    try:
        await asyncio.wait({collector.exited}, timeout=timeout_s)
        if not collector.exited.done():
            timed_out = True
            await _kill_group(pgid, collector.exited)
        else:
            await asyncio.wait({collector.closed}, timeout=_DRAIN_GRACE_S)
            if not collector.closed.done():
                leftovers = True
                _signal_group(pgid, signal.SIGKILL)
        await asyncio.wait({collector.closed}, timeout=_DRAIN_GRACE_S)
    except asyncio.CancelledError:
        _signal_group(pgid, signal.SIGKILL)
        raise
    finally:
        transport.close()
        watchdog.release()
    exit_code = None if timed_out else transport.get_returncode()
    return CommandResult(exit_code, tail.text(), tail.dropped, leftovers)


async def run_command(
    command: str,
    root: Path,
    *,
    timeout_s: float = 120,
    max_chars: int = 20_000,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> tuple[int | None, str]:
    """`execute_command` for callers outside the tool: (exit code or None on timeout, output with notes)."""
    result = await execute_command(command, root, timeout_s=timeout_s, max_chars=max_chars, env=env, sandbox=sandbox)
    return result.exit_code, result.body()


class RunArgs(ToolArgs):
    command: str = Field(description="Shell command, run with /bin/sh -c in the repository root; stdin is empty.")
    timeout_s: int = Field(120, ge=1, le=3600, description="Kill the command after this many seconds.")


@register
class Run:
    name: ClassVar[str] = "run"
    description: ClassVar[str] = (
        "Run a shell command in the repository root (tests, builds, git, ls...). Returns the exit code and "
        "the end of the combined stdout/stderr. Non-interactive: stdin is empty."
    )
    Args: ClassVar[type[ToolArgs]] = RunArgs
    read_only: ClassVar[bool] = False

    async def run(self, args: RunArgs, ctx: ToolContext) -> ToolResult:
        ctx.before_write(None)
        try:
            limits = {"timeout_s": args.timeout_s, "max_chars": ctx.max_output_chars}
            result = await execute_command(args.command, ctx.root, **limits, env=ctx.env, sandbox=ctx.sandbox)
        except subprocess.SubprocessError as exc:  # the sandbox could not be applied in the child
            return ToolResult(output=f"not run: the sandbox could not be applied ({exc})")
        if result.exit_code is None:
            head = f"timed out after {args.timeout_s} s; the command and its child processes were killed"
        else:
            head = f"exit code {result.exit_code}"
        body = result.body()
        note = ctx.sandbox.explain(body) if ctx.sandbox is not None and result.exit_code else ""
        return ToolResult(output=f"{head}\n{body}" + (f"\n{note}" if note else ""))
