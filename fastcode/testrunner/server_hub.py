"""The kept-alive warm runner: many fastcode processes, one run at a time, until it has been idle too long.

`python server.py --listen FD PATH STATE IDLE KEY` (see `server.py`, which loads this file by path): FD is a
listening unix socket bound at PATH by the fastcode process that started the runner, in a session of its own.
Each connection gets the hello (plus "key" and the "fingerprint" of the installed distributions, recomputed per
connection: when it changed the new connection gets {"event": "stale"} and the runner retires), then the same
requests as over the inherited socket; one run at a time, and a request from another connection meanwhile gets
{"id": n, "event": "busy"}. A connection that closes during its run has the run killed. After IDLE seconds without
a request the runner removes PATH and STATE (when still its own) and exits; it exits sooner when PATH is removed or
replaced. A request must carry the runner's token ($FASTCODE_RUNNER_TOKEN when it started, removed from its
environment at once); any other gets {"event": "refused"}: another process of the same user, a sandboxed command
say, cannot have code run outside its sandbox. Standard library only, compatible with Python 3.8, like `server.py`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import select
import socket
import sys
import time

from __main__ import _fill, _Lines, _preload, _say, _serve  # server.py, running as the script

ORPHAN_CHECK_S = 5.0
"""Kept alive and idle: how often the runner checks that new fastcode processes can still find it."""


def _fingerprint() -> str:
    """The installed distributions on sys.path (names and mtimes of their metadata): installing, removing or
    upgrading a pytest plugin changes it."""
    import hashlib

    seen = []
    for entry in sys.path:
        try:
            with os.scandir(entry) as found:
                for item in found:
                    if item.name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")):
                        seen.append(f"{entry}/{item.name}:{item.stat().st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(sorted(seen)).encode()).hexdigest()[:16]


def _log(message: str) -> None:
    print(f"fastcode test runner {os.getpid()} [{time.strftime('%H:%M:%S')}]: {message}", flush=True)


class _Hub:
    """Kept alive: the listening socket and the connected fastcode processes."""

    def __init__(self, listener: socket.socket, path: str, state: str, hello: dict, token: str = "") -> None:
        self.listener: socket.socket | None = listener
        self.path, self.state, self.hello, self.token = path, state, hello, token
        try:
            self.inode = os.stat(path).st_ino  # bound by fastcode before this process started
        except OSError:
            self.inode = -1
        self.conns: list = []
        self.stale = False

    def sockets(self) -> list:
        return ([self.listener] if self.listener else []) + [c.sock for c in self.conns]

    def drop(self, conn: _Lines) -> None:
        self.conns.remove(conn)
        conn.sock.close()

    def accept(self) -> None:
        try:
            sock = self.listener.accept()[0]  # type: ignore[union-attr]
        except OSError:
            return
        sock.setblocking(True)
        if _fingerprint() != self.hello["fingerprint"]:
            self.retire()
            self.stale = True
            _log("the installed distributions changed: retiring")
            _say(sock, {"event": "stale", "error": "the installed pytest plugins changed since the runner started"})
            sock.close()
        elif _say(sock, self.hello):
            self.conns.append(_Lines(sock))

    def requests(self, ready: list, busy: bool) -> list:
        """Accept and read what is ready; the requests to serve now (when busy they are answered "busy")."""
        if self.listener is not None and self.listener in ready:
            self.accept()
        out = []
        for conn in list(self.conns):
            if conn.sock in ready and not _fill(conn):
                self.drop(conn)
                continue
            for request in conn.pop():
                if not self.token or not hmac.compare_digest(str(request.get("token", "")), self.token):
                    _say(conn.sock, {"id": request.get("id"), "event": "refused", "error": "not authorised"})
                elif busy:
                    _say(conn.sock, {"id": request.get("id"), "event": "busy"})
                else:
                    out.append((conn, request))
        return out

    def reachable(self) -> bool:
        """The socket file is still this runner's (a removed cache folder, or a newer runner, means it is not)."""
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def retire(self) -> None:
        """No new connections: the socket path and the state file go (when still this runner's)."""
        if self.listener is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        with contextlib.suppress(OSError, ValueError), open(self.state) as file:
            if json.load(file).get("pid") == os.getpid():
                os.unlink(self.state)
        self.listener.close()
        self.listener = None


def listen(fd: int, path: str, state: str, idle_s: float, key: str) -> None:
    token = os.environ.pop("FASTCODE_RUNNER_TOKEN", "")  # only requests that carry it are served
    listener = socket.socket(fileno=fd)
    listener.setblocking(True)
    fingerprint = _fingerprint()
    _log(f"importing pytest; stops after {idle_s:g} s without a request")
    try:
        shown = _preload(os.getcwd())
        import pytest

        hello = {"event": "ready", "pid": os.getpid(), "python": sys.executable, "pytest": pytest.__version__,
                 "key": key, "fingerprint": fingerprint}  # fmt: skip
    except BaseException as exc:
        hello = {"event": "failed", "error": str(exc) or type(exc).__name__}
        shown = []
    hub = _Hub(listener, path, state, hello, token)
    if hello["event"] == "failed":
        _log(hello["error"])
        hub.listener = None
        with contextlib.suppress(OSError):
            os.unlink(path)
        listener.setblocking(False)
        with contextlib.suppress(OSError):
            while True:  # the connections already waiting learn why
                _say(listener.accept()[0], hello)
        return
    tmp = f"{state}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):  # a sandboxed runner may not write fastcode's cache: the state is a courtesy
        with open(tmp, "w") as file:
            json.dump({**hello, "started": time.time()}, file)
        os.replace(tmp, state)
    last = time.monotonic()
    while not hub.stale:
        left = last + idle_s - time.monotonic()
        ready = select.select(hub.sockets(), [], [], min(max(left, 0.0), ORPHAN_CHECK_S))[0]
        if not ready and left <= 0:
            hub.retire()
            _log(f"no request for {idle_s:g} s: exiting")
            return
        if not ready and not hub.reachable():
            _log("the socket file was removed or replaced: exiting")
            return
        for conn, request in hub.requests(ready, busy=False):
            if conn in hub.conns:
                _serve(request, conn, shown, hub)
            last = time.monotonic()
