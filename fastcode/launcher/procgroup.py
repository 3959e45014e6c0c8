"""Process groups: start a server in a session of its own (optionally dying with its parent, even when the parent is
SIGKILLed), and stop a whole group (SIGTERM, a grace period, then SIGKILL). Standard library only."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fastcode.launcher.binaries import cached_output
from fastcode.launcher.state import prepare_dir, proc_stat


def parent_death(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """(argv, preexec) asking Linux to SIGTERM the server when this process dies, even by SIGKILL.

    The parent-death signal belongs to the thread that forks, so it is set only from the main thread: with a
    preexec function when no other thread runs (one could hold a lock the forked child needs), else through
    `setpriv --pdeathsig TERM` when util-linux has it, else not at all (normal exits still stop the server).
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return argv, None
    if threading.active_count() > 1:
        setpriv = shutil.which("setpriv")
        if setpriv and "--pdeathsig" in cached_output([setpriv, "--help"], timeout_s=10):
            return [setpriv, "--pdeathsig", "TERM", *argv], None
        return argv, None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return argv, None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return argv, preexec


def spawn(argv: list[str], log: Path, *, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (its own process group), output to `log`, stdin closed."""
    prepare_dir(log.parent)
    argv, preexec = parent_death(argv) if die_with_parent else (argv, None)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=preexec,
        )  # fmt: skip


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` runs. Zombies do not count (an init that never reaps them would
    otherwise make every stop wait for its full grace period)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        stat = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat and len(stat) > 2 and stat[2] == str(pgid) and stat[0] != "Z":
            return True
    return False


def stop_group(pid: int, *, proc: subprocess.Popen[bytes] | None = None, grace_s: float = 10.0) -> None:
    """SIGTERM the process group led by `pid`, wait up to `grace_s`, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # reap the leader, or it stays a zombie member of the group
        if not _group_alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    if proc is not None:  # the leader may have exited just after the last poll: reap it
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
