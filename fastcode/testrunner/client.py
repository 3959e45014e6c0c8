"""One warm runner process, seen from fastcode: start it, wait until it is ready, run pytest in it, stop it.

Talks to `server.py` over a unix socket pair (JSON lines) through the event loop's socket calls, so a runner is not
tied to one event loop. A runner is either this process's child, exiting when the socket closes (keep-alive 0),
or kept alive (`shared`): detached, found again by later fastcode processes, serving one run at a time. Owns the
parent's side of a run: the timeout, and the child's process group killed on
timeout (SIGTERM, then SIGKILL) or when the awaiting task is cancelled. Any failure of the runner itself raises
RunnerError saying why; the caller then runs the command as a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastcode.testrunner.common import SERVER, RunnerError
from fastcode.tools.shell import CommandResult

READY_TIMEOUT_S = 60.0
"""How long the first run waits for the runner to import pytest and the plugins."""
TERM_GRACE_S = 2.0
"""After SIGTERM on timeout, how long the child's group gets before SIGKILL (as for a subprocess run)."""


class Rerun(RunnerError):
    """This run's result cannot be trusted to match a subprocess run's (the runner itself is fine)."""


class Busy(RunnerError):
    """A kept-alive runner is serving another fastcode process's run, or cannot serve this repo (it stays usable)."""


class Stale(RunnerError):
    """The kept-alive runner this process found is gone or out of date: start another one and try again."""


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _confiner(spec: dict[str, Any] | None) -> Callable[[], None] | None:
    """The runner process confines itself before it imports anything of the repository (see `Sandbox.runner_spec`)."""
    if not spec:
        return None
    from fastcode.sandbox.confine import confine

    return lambda: confine(spec)


class WarmRunner:
    """A runner process for one interpreter and repo root; `run` serves one test run at a time."""

    def __init__(
        self,
        python: tuple[str, ...],
        root: Path,
        *,
        keep_alive_s: float = 0.0,
        not_inode: int = 0,
        confine: dict[str, Any] | None = None,
    ) -> None:
        self.python, self.root, self.key, self.inode, self.token = python, root, "", 0, ""
        self.buffer = b""
        self.ready: dict[str, Any] | None = None
        self.busy = self.closed = False
        self._ids = itertools.count(1)
        self._abandoned = 0
        """A run cancelled after its group was killed: the runner is free again once it reports it done."""
        self.proc: subprocess.Popen[bytes] | None
        if keep_alive_s > 0:
            from fastcode.testrunner import shared

            self.key = shared.runner_key(python, root, confine)
            self.sock, self.inode, self.proc, self.token = shared.connect_or_start(
                python, root, self.key, keep_alive_s, not_inode=not_inode, preexec=_confiner(confine)
            )
            self.sock.setblocking(False)
            return
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [*python, str(SERVER), str(theirs.fileno())],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,  # never read while it runs: its stdout is a pipe, as a subprocess run's is
                stderr=subprocess.STDOUT,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                preexec_fn=_confiner(confine),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.sock.close()
            raise RunnerError(f"the warm runner did not start: {exc}") from exc
        finally:
            theirs.close()
        self.sock.setblocking(False)

    @property
    def shared(self) -> bool:
        """Kept alive: not this process's to stop."""
        return bool(self.key)

    @property
    def pid(self) -> int:
        if self.ready is not None and "pid" in self.ready:
            return int(self.ready["pid"])
        return self.proc.pid if self.proc is not None else 0

    @property
    def alive(self) -> bool:
        if self.closed:
            return False
        if not self.shared:
            return self.proc is not None and self.proc.poll() is None
        try:
            return self.sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True  # connected, nothing to read
        except OSError:
            return False

    def _gone(self) -> str:
        """Why the runner stopped answering, with the last line it printed."""
        if self.shared:
            if self.proc is None:
                raise Stale("the kept-alive warm runner went away")
            from fastcode.testrunner import shared

            last = shared.log_tail(self.key)
            return "the warm runner exited" + (f": {last}" if last else "")
        assert self.proc is not None
        last = ""
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        if self.proc.stdout is not None and self.proc.poll() is not None:
            with suppress(OSError, TypeError):
                os.set_blocking(self.proc.stdout.fileno(), False)
                lines = (os.read(self.proc.stdout.fileno(), 65536) or b"").decode(errors="replace").splitlines()
                last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return "the warm runner exited" + (f": {last}" if last else "")

    async def _message(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        while b"\n" not in self.buffer:
            try:
                data = await loop.sock_recv(self.sock, 65536)
            except OSError as exc:
                raise RunnerError(f"lost the warm runner: {exc}") from exc
            if not data:
                raise RunnerError(self._gone())
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise RunnerError(f"the warm runner sent something else than JSON: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            raise RunnerError(f"the warm runner sent an unexpected message: {line[:80]!r}")
        return message

    async def _reply(self, run_id: int, event: str, timeout_s: float) -> dict[str, Any]:
        """The next message of this run (messages left over from a cancelled run are skipped); Busy when a kept-alive
        runner declines it."""
        async with asyncio.timeout(timeout_s):
            while True:
                message = await self._message()
                if message.get("id") != run_id:
                    continue
                if message.get("event") == "busy":
                    raise Busy("the warm runner is busy with another fastcode process's run")
                if message.get("event") == "refused":
                    raise Busy(str(message.get("error") or "the warm runner refused the run"))
                if message.get("event") == event:
                    return message

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """The runner's hello once pytest and the plugins are imported; RunnerError when it failed to get there."""
        if self.ready is None:
            try:
                async with asyncio.timeout(timeout_s):
                    message = await self._message()
            except TimeoutError:
                raise RunnerError(f"the warm runner was not ready after {timeout_s:g} s") from None
            if message.get("event") == "stale" or (self.shared and message.get("event") == "ready"
                                                    and message.get("key") != self.key):  # fmt: skip
                self.close()
                raise Stale(str(message.get("error") or "the kept-alive warm runner is not this environment's"))
            if message.get("event") != "ready":
                raise RunnerError(str(message.get("error") or f"unexpected hello from the warm runner: {message}"))
            self.ready = message
        return self.ready

    async def run(
        self,
        args: list[str],
        *,
        script: str = "",
        timeout_s: float,
        max_chars: int,
        cwd: Path | None = None,
        path: list[str] | None = None,
        sandbox: dict[str, Any] | None = None,
    ) -> CommandResult:
        """Run pytest with `args` in a fresh child (in `cwd`, default the root, with `path` first on sys.path,
        confined by the `sandbox` spec first); exit code None when it timed out and its group was killed."""
        if self.closed:
            raise RunnerError("the warm runner was stopped")
        if self.busy:
            raise RunnerError("the warm runner is busy with another run")
        self.busy = True
        try:
            return await self._run(args, script, timeout_s, max_chars, cwd or self.root, path or [], sandbox)
        except (Rerun, Busy):
            raise
        except RunnerError:
            self.close()
            raise
        except (KeyError, TypeError, ValueError, OSError) as exc:
            self.close()
            raise RunnerError(f"protocol error with the warm runner: {type(exc).__name__}: {exc}") from exc
        finally:
            self.busy = False

    async def _run(
        self,
        args: list[str],
        script: str,
        timeout_s: float,
        max_chars: int,
        cwd: Path,
        path: list[str],
        sandbox: dict[str, Any] | None,
    ) -> CommandResult:
        await self.wait_ready()
        if self._abandoned:  # a kept-alive runner would answer "busy" until it has reaped the killed run
            with suppress(TimeoutError):
                await self._reply(self._abandoned, "done", TERM_GRACE_S)
            self._abandoned = 0
        run_id = next(self._ids)
        request = {"id": run_id, "args": args, "script": script, "cwd": str(cwd), "max_bytes": max_chars}
        if path:
            request["path"] = path
        if sandbox:
            request["sandbox"] = sandbox
        if self.token:
            request["token"] = self.token
        await asyncio.get_running_loop().sock_sendall(self.sock, (json.dumps(request) + "\n").encode())
        try:
            pgid = int((await self._reply(run_id, "started", READY_TIMEOUT_S))["pid"])
        except asyncio.CancelledError:
            self.close()  # the runner kills a child it cannot report on when fastcode hangs up
            raise
        except TimeoutError:
            raise RunnerError("the warm runner did not start the run") from None
        try:
            done = await self._reply(run_id, "done", timeout_s)
        except TimeoutError:
            return await self._stop(run_id, pgid)
        except asyncio.CancelledError:
            _signal_group(pgid, signal.SIGKILL)
            self._abandoned = run_id
            raise
        result = self._result(done)
        if result.exit_code is not None and result.exit_code < 0:
            raise Rerun(f"the test process was killed by signal {-result.exit_code}")
        return result

    async def _stop(self, run_id: int, pgid: int) -> CommandResult:
        """Timed out: SIGTERM the child's group, then SIGKILL; the output so far, exit code None."""
        _signal_group(pgid, signal.SIGTERM)
        for then in (signal.SIGKILL, None):
            try:
                return replace(self._result(await self._reply(run_id, "done", TERM_GRACE_S)), exit_code=None)
            except TimeoutError:
                if then is not None:
                    _signal_group(pgid, then)
        self.close()
        return CommandResult(None, "", 0, False)

    @staticmethod
    def _result(done: dict[str, Any]) -> CommandResult:
        dropped = int(done["dropped"])
        text = base64.b64decode(done["output"]).decode("utf-8", errors="replace")
        return CommandResult(int(done["status"]), text.lstrip("\ufffd") if dropped else text, dropped,
                             bool(done["leftovers"]))  # fmt: skip

    def close(self) -> None:
        """Hang up: a ready runner exits by itself (killing a child still running), killed if it has not after 2 s;
        one still importing is killed at once (it has no child yet)."""
        if self.closed:
            return
        self.closed = True
        self.sock.close()
        if self.shared or self.proc is None:
            return  # kept alive: it stops itself once idle
        if self.ready is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
