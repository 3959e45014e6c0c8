"""Kept-alive runners: found by key in the user cache, started detached when there is none.

A runner kept alive (`agent.test_runner_keep_alive` > 0) listens on `<cache>/fastcode/testrunners/<key>.sock`
($XDG_CACHE_HOME respected), writes `<key>.json` (its hello, with its pid) once ready and logs to `<key>.log`. The key
hashes the interpreter argv and the environment it inherits (PYTHONPATH, PYTEST_*…: all but VOLATILE; the root when
PYTHONPATH has relative entries): each run names its repo, so one runner serves every repo of that interpreter. An
flock on `<key>.lock` makes the connect-or-start atomic, so two fastcode processes never start two runners. The
fastcode process binds the socket and hands it to the runner, so it can connect at once, before the runner is ready.

Any process of the user can connect to the socket, a sandboxed command too: a runner serves only requests that carry
its token, made by the fastcode process that starts it, handed over in its environment and kept in `<key>.token`
(mode 0600) for later fastcode processes. Sandboxed commands cannot read fastcode's cache folder (see
`fastcode.sandbox`), so they cannot ask a runner to run anything unconfined.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastcode.core.paths import cache_root
from fastcode.core.secrets import child_environ
from fastcode.testrunner.common import SERVER, RunnerError

VOLATILE = frozenset({"PYTEST_CURRENT_TEST"})
"""Variables left out of the key: pytest sets this one itself, in the run's child, for every test phase."""
TOKEN_VARIABLE = "FASTCODE_RUNNER_TOKEN"
"""How a kept-alive runner learns its token (it removes the variable at once: its runs never see it)."""
MAX_PATH = 100
"""Longest socket path bound (the kernel's limit is 107 bytes)."""


def folder() -> Path:
    """Where kept-alive runners keep their sockets, state files and logs (created, private)."""
    base = cache_root() / "testrunners"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base


def runner_key(python: tuple[str, ...], root: Path, confine: dict[str, Any] | None = None) -> str:
    """The key of the runner for this interpreter in this environment (and root, when the environment is relative;
    and the sandbox that confines it: a confined runner serves only the repository it may write)."""
    relative = any(p and not os.path.isabs(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep))
    where = str(root) if relative or any(not os.path.isabs(p) for p in python) else ""
    environment = sorted((k, v) for k, v in child_environ().items() if k not in VOLATILE)
    text = repr((python, where, environment)) + (json.dumps(confine, sort_keys=True) if confine else "")
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


def _token(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return ""


def _new_token(path: Path) -> str:
    token = secrets.token_hex(16)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(token)
    os.replace(tmp, path)
    return token


def connect_or_start(
    python: tuple[str, ...],
    root: Path,
    key: str,
    idle_s: float,
    *,
    not_inode: int = 0,
    preexec: Callable[[], None] | None = None,
) -> tuple[socket.socket, int, subprocess.Popen[bytes] | None, str]:
    """(connection, inode of the socket file, the process when this call started it, the runner's token).
    `not_inode`: the runner behind that socket file turned out stale or gone, so a new one is started unless another
    process already did. A runner without a token file (started by an older fastcode) counts as stale."""
    base = folder()
    path, state, token_file = base / f"{key}.sock", base / f"{key}.json", base / f"{key}.token"
    if len(str(path)) > MAX_PATH:
        raise RunnerError(f"the cache folder's path is too long for a socket: {base}")
    with open(base / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        found = _connect(path)
        if found is not None and found[1] != not_inode and (token := _token(token_file)):
            return found[0], found[1], None, token
        if found is not None:
            found[0].close()
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            token = _new_token(token_file)
            listener.bind(str(path))
            listener.listen(64)
            with open(base / f"{key}.log", "wb") as log:
                proc = subprocess.Popen(
                    [*python, str(SERVER), "--listen", str(listener.fileno()), str(path), str(state), f"{idle_s:g}",
                     key],
                    cwd=root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),), start_new_session=True,
                    env={**child_environ(), TOKEN_VARIABLE: token}, preexec_fn=preexec,
                )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            path.unlink(missing_ok=True)
            raise RunnerError(f"the warm runner did not start: {exc}") from exc
        finally:
            listener.close()
        found = _connect(path)
        if found is None:
            raise RunnerError("could not connect to the warm runner just started")
        return found[0], found[1], proc, token


def log_tail(key: str) -> str:
    """The last line a kept-alive runner logged ("" when none)."""
    try:
        lines = (folder() / f"{key}.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
