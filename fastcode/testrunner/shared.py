"""Kept-alive runners: found by key in the user cache, started detached when there is none.

A runner kept alive (`agent.test_runner_keep_alive` > 0) listens on `<cache>/fastcode/testrunners/<key>.sock`
($XDG_CACHE_HOME respected), writes `<key>.json` (its hello, with its pid) once ready and logs to `<key>.log`. The key
hashes the interpreter argv and the environment it inherits (PYTHONPATH, PYTEST_*…: all but VOLATILE; the root when
PYTHONPATH has relative entries): each run names its repo, so one runner serves every repo of that interpreter. An
flock on `<key>.lock` makes the connect-or-start atomic, so two fastcode processes never start two runners. The
fastcode process binds the socket and hands it to the runner, so it can connect at once, before the runner is ready.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import subprocess
from pathlib import Path

from fastcode.core.secrets import child_environ
from fastcode.testrunner.common import SERVER, RunnerError

VOLATILE = frozenset({"PYTEST_CURRENT_TEST"})
"""Variables left out of the key: pytest sets this one itself, in the run's child, for every test phase."""
MAX_PATH = 100
"""Longest socket path bound (the kernel's limit is 107 bytes)."""


def folder() -> Path:
    """Where kept-alive runners keep their sockets, state files and logs (created, private)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastcode" / "testrunners"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def runner_key(python: tuple[str, ...], root: Path) -> str:
    """The key of the runner for this interpreter in this environment (and root, when the environment is relative)."""
    relative = any(p and not os.path.isabs(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep))
    where = str(root) if relative or any(not os.path.isabs(p) for p in python) else ""
    environment = sorted((k, v) for k, v in child_environ().items() if k not in VOLATILE)
    text = repr((python, where, environment))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _connect(path: Path) -> tuple[socket.socket, int] | None:
    """A connection to the runner listening at `path` and the socket file's inode; None when nothing listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        inode = path.stat().st_ino
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock, inode


def connect_or_start(
    python: tuple[str, ...], root: Path, key: str, idle_s: float, *, not_inode: int = 0
) -> tuple[socket.socket, int, subprocess.Popen[bytes] | None]:
    """(connection, inode of the socket file, the process when this call started it). `not_inode`: the runner
    behind that socket file turned out stale or gone, so a new one is started unless another process already did."""
    base = folder()
    path, state = base / f"{key}.sock", base / f"{key}.json"
    if len(str(path)) > MAX_PATH:
        raise RunnerError(f"the cache folder's path is too long for a socket: {base}")
    with open(base / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        found = _connect(path)
        if found is not None and found[1] != not_inode:
            return found[0], found[1], None
        if found is not None:
            found[0].close()
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(64)
            with open(base / f"{key}.log", "wb") as log:
                proc = subprocess.Popen(
                    [*python, str(SERVER), "--listen", str(listener.fileno()), str(path), str(state), f"{idle_s:g}",
                     key],
                    cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),), start_new_session=True, env=child_environ(),
                )  # fmt: skip
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise RunnerError(f"the warm runner did not start: {exc}") from exc
        finally:
            listener.close()
        found = _connect(path)
        if found is None:
            raise RunnerError("could not connect to the warm runner just started")
        return found[0], found[1], proc


def log_tail(key: str) -> str:
    """The last line a kept-alive runner logged ("" when none)."""
    try:
        lines = (folder() / f"{key}.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
