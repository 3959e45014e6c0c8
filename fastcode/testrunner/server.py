"""The warm runner process: imports pytest and the installed pytest plugins once, then forks one child per test run.

Run as a script by the interpreter the test command names (`python server.py FD`, cwd = the repo root). It uses the
standard library and pytest only — never fastcode, never the repository's own modules: each run is a fresh child
that imports them anew, with sys.path, argv, stdout/stderr and exit status as `python -m pytest` (or the `pytest`
script) would have them. Protocol, JSON lines over the inherited unix socket FD:

    runner -> {"event": "ready", "pid": ..., "pytest": ...}  or  {"event": "failed", "error": ...}
    client -> {"id": n, "args": [...], "script": "", "cwd": root, "max_bytes": n, "sandbox": {...} (optional)}
    runner -> {"id": n, "event": "started", "pid": pid}            the child leads its own process group
    runner -> {"id": n, "event": "done", "status": s, "output": base64, "dropped": n, "leftovers": bool}

`status` is the exit code, or minus the signal that killed the child. With a `sandbox` spec, the child confines
itself (`../sandbox/confine.py`, loaded by path) before it runs anything; when that fails it exits 126. The runner
exits when the socket closes (fastcode exited or died), killing a running child's process group first. Kept alive
instead (`--listen`): see `server_hub.py`, which this script loads by path. Kept compatible with Python 3.8.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import time
import warnings
from typing import Any

_CHECKED: dict = {}
"""Repo root -> the name of a preloaded module that lives in it ("" when none does: runs may be served there)."""
DRAIN_GRACE_S = 0.5
"""After the child exits, how long its background processes may hold the output pipe before they are killed."""


def _send(sock: socket.socket, message: dict) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())


class _Lines:
    """JSON lines from the client; EOF means the client is gone."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def pop(self) -> list:
        """The complete messages received so far."""
        out = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            out.append(json.loads(line))
        return out

    def next(self) -> dict | None:
        while b"\n" not in self.buffer:
            if not self.fill():
                return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _repo_module(root: str) -> str:
    """The name of an imported module that lives in the repository (not in an environment inside it), or ""."""
    inside = os.path.realpath(root) + os.sep
    envs = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if real.startswith(inside) and not real.startswith(envs) and "-packages" + os.sep not in real:
            return name
    return ""


def _preload(root: str) -> list[str]:
    """Import pytest and the `pytest11` plugins as pytest itself would: in the order pluggy loads them, through
    pytest's assertion-rewriting import hook (so a child's pytest finds them rewritten, as it expects). Returns the
    warnings the imports showed, which every child prints first, as a fresh interpreter would."""
    from importlib import metadata

    with warnings.catch_warnings(record=True) as shown:
        import pytest  # noqa: F401

        if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            from _pytest.assertion import install_importhook
            from _pytest.config import _iter_rewritable_modules, get_config

            config = get_config()
            if not hasattr(config, "inicfg"):
                config.inicfg = {}
            hook = install_importhook(config)
            try:
                dists = list(metadata.distributions())
                files = [str(f) for d in dists if any(ep.group == "pytest11" for ep in d.entry_points)
                         for f in d.files or []]  # fmt: skip
                hook.mark_rewrite(*_iter_rewritable_modules(files))
                loaded = set()
                for dist in dists:
                    for ep in dist.entry_points:
                        if ep.group != "pytest11" or ep.name in loaded:
                            continue
                        loaded.add(ep.name)
                        try:
                            ep.load()
                        except BaseException as exc:
                            raise RuntimeError(f"the pytest plugin {ep.name!r} ({ep.value}) failed to import: "
                                               f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
            finally:
                if hook in sys.meta_path:
                    sys.meta_path.remove(hook)
    for caught in shown:
        if caught.category.__name__ == "PytestAssertRewriteWarning":
            raise RuntimeError(f"pytest could not rewrite a plugin: {caught.message}")
    name = _repo_module(root)
    if name:
        raise RuntimeError(f"a pytest plugin imports the repository's own module {name!r}")
    texts = [warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in shown]
    # Every child starts with these objects: keep them out of its collections (pytest collects five times a run).
    gc.collect()
    gc.freeze()
    return texts


def _exit_status(code: object) -> int:
    """The process exit status for `SystemExit(code)`, as CPython computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_pytest(request: dict, shown: list[str]) -> int:
    import atexit
    import runpy
    import threading

    os.chdir(request.get("cwd") or ".")  # by name: the folder may have been replaced since the runner started
    script = request.get("script") or ""
    if script:
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
    elif not getattr(sys.flags, "safe_path", False):
        sys.path.insert(0, os.getcwd())
    sys.path[0:0] = request.get("path") or []  # a copy's src/, ahead of an editable install of the original
    for text in shown:
        sys.stderr.write(text)
    sys.argv = [script or "-m", *request["args"]]
    try:
        if script:
            runpy.run_path(script, run_name="__main__")
        else:
            runpy.run_module("pytest", run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter does at exit: join threads, atexit
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    return status


_CONFINE: list = []
"""fastcode's `sandbox/confine.py`, loaded by path (never into sys.modules) by the first run that asks for it."""


def _confiner() -> Any:
    if not _CONFINE:
        from importlib.util import module_from_spec, spec_from_file_location

        here = os.path.dirname(os.path.realpath(__file__))
        spec = spec_from_file_location("fastcode_confine", os.path.join(here, "..", "sandbox", "confine.py"))
        module = module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        _CONFINE.append(module)
    return _CONFINE[0]


def _child(request: dict, socks: list, read_fd: int, write_fd: int, shown: list[str]) -> None:
    status = 1
    try:
        os.setpgid(0, 0)
        for sock in socks:
            sock.close()
        os.close(read_fd)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        if request.get("sandbox"):
            try:
                _confiner().confine(request["sandbox"])
                if "tempfile" in sys.modules:  # pytest's tmp_path asks tempfile: forget the runner's temp dir
                    sys.modules["tempfile"].tempdir = None
            except OSError as exc:  # never run the tests unconfined
                sys.stderr.write(f"not run: the sandbox could not be applied ({exc})\n")
                status = 126
                return
        status = _run_pytest(request, shown)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)


def _kill(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def _serve(request: dict, lines: _Lines, shown: list[str], hub: Any = None) -> None:
    """One run: fork the child, collect the tail of its output until it exits and the pipe closes, report. With a
    hub (kept alive), other connections are answered meanwhile, and a requester that hangs up only ends its run."""
    sock, hung_up = lines.sock, False
    cwd = request.get("cwd") or "."
    if cwd not in _CHECKED:
        _CHECKED[cwd] = _repo_module(cwd)
    if _CHECKED[cwd]:
        _say(sock, {"id": request.get("id"), "event": "refused",
                    "error": "a pytest plugin imports the repository's own module"})  # fmt: skip
        return
    if request.get("sandbox"):
        _confiner()  # loaded once, before the fork
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request, [sock, *(hub.sockets() if hub else [])], read_fd, write_fd, shown)
    os.close(write_fd)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # as the child does itself: whoever is first, the group exists before "started"
    _say(sock, {"id": request["id"], "event": "started", "pid": pid})
    limit, tail, dropped = max(int(request.get("max_bytes", 20_000)), 1), bytearray(), 0
    try:
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        pidfd = None
    status, exited_at, closed, leftovers = None, 0.0, False, False
    while not (closed and status is not None):
        watch = ([] if hung_up else [sock]) + ([] if closed else [read_fd]) + (hub.sockets() if hub else [])
        watch += [pidfd] if pidfd is not None and status is None else []
        if status is None:
            timeout = None if pidfd is not None else 0.05
        else:
            timeout = max(0.0, exited_at + DRAIN_GRACE_S * (2 if leftovers else 1) - time.monotonic())
        ready = select.select(watch, [], [], timeout)[0]
        if read_fd in ready:
            chunk = os.read(read_fd, 65536)
            closed = not chunk
            tail += chunk
            if len(tail) > limit:
                dropped += len(tail) - limit
                del tail[: len(tail) - limit]
        if not hung_up and sock in ready and not _fill(lines):  # fastcode is gone: so is this run
            _kill(pid)
            if hub is None:
                raise SystemExit(0)
            hub.drop(lines)
            hung_up = True
        if hub is not None:
            hub.requests(ready, busy=True)
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status, exited_at = raw, time.monotonic()
        elif not closed and time.monotonic() >= exited_at + DRAIN_GRACE_S * (2 if leftovers else 1):
            if leftovers:
                break  # something outside the group still holds the pipe: stop listening
            leftovers = True
            _kill(pid)
    os.close(read_fd)
    if pidfd is not None:
        os.close(pidfd)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    output = base64.b64encode(bytes(tail)).decode()
    if not hung_up:
        _say(sock, {"id": request["id"], "event": "done", "status": code, "output": output, "dropped": dropped,
                    "leftovers": leftovers})  # fmt: skip


def _say(sock: socket.socket, message: dict) -> bool:
    """Send, False when that connection is gone."""
    try:
        _send(sock, message)
        return True
    except OSError:
        return False


def _fill(lines: _Lines) -> bool:
    try:
        return lines.fill()
    except OSError:
        return False


def main() -> None:
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and sys.path[0] == here:
        del sys.path[0]  # this script's folder is not the repo's business
    if sys.argv[1] == "--listen":  # kept alive: the hub's code, loaded by path and never put in sys.modules, where it
        from importlib.util import module_from_spec, spec_from_file_location  # could shadow a repo's module

        spec = spec_from_file_location("fastcode_runner_hub", os.path.join(here, "server_hub.py"))
        hub = module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(hub)  # type: ignore[union-attr]
        fd, path, state, idle, key = sys.argv[2:7]
        hub.listen(int(fd), path, state, float(idle), key)
        return
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.setblocking(True)
    lines = _Lines(sock)
    try:
        shown = _preload(os.getcwd())
    except BaseException as exc:
        _send(sock, {"event": "failed", "error": str(exc) or type(exc).__name__})
        return
    import pytest

    _send(sock, {"event": "ready", "pid": os.getpid(), "python": sys.executable, "pytest": pytest.__version__})
    while True:
        request = lines.next()
        if request is None:
            return
        _serve(request, lines, shown)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, ConnectionError):
        main()
