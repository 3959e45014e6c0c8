"""Child processes of the harness: each in its own process group, killed as a group on timeout or interrupt.

Every process the harness starts (setup, the agent, a scripted server, the tests) goes through `start`, so an
interrupted eval can end exactly the processes it started (`kill_all`) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_live: set[subprocess.Popen] = set()
_lock = threading.Lock()
_stopping = threading.Event()


class Stopped(OSError):
    """The eval is being interrupted: no new child processes."""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for children: this interpreter's bin first on PATH (so `python` and `pytest` are the ones
    fastcode runs with) and no .pyc writes (same-size edits within one second would otherwise load stale code)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env | (extra or {})


def start(
    args: list[str] | str,
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: IO | int,
    stderr: IO | int = subprocess.STDOUT,
    shell: bool = False,
) -> subprocess.Popen:
    if _stopping.is_set():
        raise Stopped("the eval was interrupted")
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        shell=shell,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    with _lock:
        _live.add(proc)
    return proc


def stop(proc: subprocess.Popen, *, grace_s: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it after `grace_s`, and forget the process."""
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait()
    forget(proc)


def forget(proc: subprocess.Popen) -> None:
    with _lock:
        _live.discard(proc)
    # The process has exited; its group may still hold stragglers (a test's background child).
    _signal(proc, signal.SIGKILL)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def allow_starts() -> None:
    _stopping.clear()


def kill_all() -> None:
    """End every child the harness started and is still waiting on, and start no more (Ctrl-C)."""
    _stopping.set()
    with _lock:
        live = list(_live)
    for proc in live:
        _signal(proc, signal.SIGTERM)


@dataclass(frozen=True)
class Finished:
    exit_code: int | None
    """None when the command was killed for taking too long."""
    output: str
    seconds: float


def run_shell(command: str, *, cwd: Path, env: dict[str, str], timeout_s: float, log: Path) -> Finished:
    """Run a shell command, stdout and stderr together into `log`; kill its group after `timeout_s`."""
    started = time.perf_counter()
    with log.open("wb") as handle:
        proc = start(command, cwd=cwd, env=env, stdout=handle, shell=True)
        try:
            code: int | None = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            code = None
            stop(proc, grace_s=1.0)
        finally:
            forget(proc)
    output = log.read_text(encoding="utf-8", errors="replace")
    return Finished(code, output, round(time.perf_counter() - started, 3))


def tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:300]
