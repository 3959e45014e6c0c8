"""Approvals without the TUI: `--approval suggest|auto-edit` on `fastcode exec` asks on the terminal, or refuses.

The engine awaits the approver for each call its approval mode guards (writes and commands for suggest, commands
for auto-edit). On a terminal the question goes to stderr and the answer is read from the terminal itself, so
`--json` on stdout stays clean; with no terminal there is no one to ask, so every guarded call is declined and the
model reads that it was.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import TextIO

from fastcode.agent.tool_exec import Approver
from fastcode.core.events import ApprovalRequested

NO_TERMINAL_SUGGEST = (
    "--approval suggest asks before every write and command, and there is no terminal to ask on; "
    "use --approval auto-edit (commands are declined) or full-auto"
)


def terminal() -> TextIO | None:
    """The controlling terminal opened for reading, or None (CI, a pipe, a container without a tty)."""
    if not sys.stderr.isatty():
        return None
    try:
        return open("/dev/tty", encoding="utf-8", errors="replace")
    except OSError:
        return None


class TerminalApprover:
    """Asks `approve run: pytest -q? [y/N]` on stderr and reads the answer from the terminal."""

    def __init__(self, tty: TextIO) -> None:
        self.tty = tty
        self.lock = asyncio.Lock()

    async def __call__(self, request: ApprovalRequested) -> bool:
        async with self.lock:  # one question at a time
            sys.stderr.write(f"\napprove {request.name}: {_preview(request)}\n[y/N] ")
            sys.stderr.flush()
            answer = await self._read_line()
        return answer.strip().lower() in ("y", "yes")

    async def _read_line(self) -> str:
        # A daemon thread, not asyncio.to_thread: a run interrupted while a question waits must exit without
        # waiting for the user to press Enter.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def read() -> None:
            line = self.tty.readline()
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(line))

        threading.Thread(target=read, daemon=True).start()
        return await future


async def decline(request: ApprovalRequested) -> bool:
    """No terminal: nobody can approve, so the call is declined (the model is told)."""
    sys.stderr.write(f"fastcode: declined {request.name} (approval needed, no terminal): {_preview(request)}\n")
    return False


def _preview(request: ApprovalRequested) -> str:
    text = request.preview or str(request.arguments.get("path", ""))
    first = text.strip().splitlines()[0] if text.strip() else ""
    more = " …" if len(text.strip().splitlines()) > 1 or len(first) > 200 else ""
    return (request.arguments.get("path", "") + ": " if request.name != "run" else "") + first[:200] + more


def pick(approval: str) -> Approver | None:
    """The approver for a headless run, None for full-auto; raises ValueError for suggest without a terminal."""
    if approval == "full-auto":
        return None
    tty = terminal() if os.environ.get("CI", "").lower() not in ("1", "true") else None
    if tty is not None:
        return TerminalApprover(tty)
    if approval == "suggest":
        raise ValueError(NO_TERMINAL_SUGGEST)
    return decline
