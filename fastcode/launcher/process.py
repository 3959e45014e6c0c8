"""Server processes: a free port, start in a process group of their own, readiness, warm-up, reuse and stop.

`launch` reuses a live detached server for the same model or starts one (state file + log, see `state`), polls
`/health` then `/v1/models` until a deadline, and sends one warm-up request. A server that is not detached gets its
parent-death signal set (Linux), so it goes away even if fastcode is killed with SIGKILL; `stop_group` sends
SIGTERM to the whole process group, waits, then SIGKILLs what is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fastcode.launcher.binaries import cached_output
from fastcode.launcher.state import (
    ServerState,
    list_states,
    prepare_dir,
    proc_start_time,
    proc_stat,
    process_alive,
    prune_logs,
    remove_state,
    write_state,
)
from fastcode.models.warmup import WarmupResult, agent_prefix, warmup_request

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(Exception):
    """A server did not start or did not become ready; the message ends with the tail of its log."""


@dataclass
class Running:
    state: ServerState
    proc: subprocess.Popen[bytes] | None
    """The process when this fastcode started it; None for a reused server."""
    reused: bool = False
    warmup: WarmupResult | None = None
    ready_ms: float = 0.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


def _die_with_parent(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
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
    argv, preexec = _die_with_parent(argv) if die_with_parent else (argv, None)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=preexec,
        )  # fmt: skip


def wait_ready(state: ServerState, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> float:
    """Poll /health, then /v1/models, until both answer 200; return the ms it took. ServerError on exit or deadline."""
    started = time.monotonic()
    deadline = started + timeout_s
    paths = ["/health", "/v1/models"]
    while paths:
        if proc is not None and proc.poll() is not None:
            raise ServerError(
                f"{state.kind} server exited with code {proc.returncode} before it was ready; "
                f"last lines of {state.log}:\n{log_tail(state.log)}"
            )
        if time.monotonic() > deadline:
            raise ServerError(
                f"{state.kind} server not ready after {timeout_s:g} s (local.ready_timeout_s); "
                f"last lines of {state.log}:\n{log_tail(state.log)}"
            )
        if http_status(state.root_url + paths[0], timeout_s=2.0) == 200:
            paths.pop(0)
        else:
            time.sleep(0.1)
    return round((time.monotonic() - started) * 1000, 2)


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


def stop_server(folder: Path, state: ServerState, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Stop a server we started (or one recorded in `folder`, after checking its pid is still that server)."""
    ours = proc is not None or (process_alive(state.pid, state.proc_start) and _leads_group(state.pid))
    remove_state(folder, state.id)  # first: a foreground `fastcode serve` then knows the stop was asked for
    if ours:
        stop_group(state.pid, proc=proc, grace_s=15.0 if state.kind == "vllm" else 10.0)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def find_running(folder: Path, kind: str, model: str) -> ServerState | None:
    """A live, reusable server of `kind` for `model` (its pid alive and /health answering 200)."""
    for state in list_states(folder):
        usable = state.kind == kind and state.model == model and not state.ephemeral
        if usable and http_status(state.root_url + "/health") == 200:
            return state
    return None


def warm_up(state: ServerState, timeout_s: float = 120.0) -> WarmupResult:
    """One `max_tokens: 1` request with fastcode's system prompt and tools, so the first real call is cached."""
    messages, tools = agent_prefix()
    extra = {"cache_prompt": True} if state.kind == "llama" else None
    return warmup_request(state.base_url, state.served_name, api_key=None, messages=messages, tools=tools,
                          timeout_s=timeout_s, extra_body=extra)  # fmt: skip


def launch(
    kind: str,
    model: str,
    served_name: str,
    build_argv: Callable[[int], list[str]],
    *,
    folder: Path,
    port: int | None = None,
    detach: bool = False,
    ephemeral: bool = False,
    reuse: bool = True,
    ready_timeout_s: float = 120.0,
    warm: bool = True,
) -> Running:
    """Reuse a running server for `model` or start one (argv from `build_argv(port)`), wait until ready, warm it.

    On any failure, Ctrl-C included, a server started here is stopped before the exception propagates.
    """
    if reuse and (existing := find_running(folder, kind, model)) is not None:
        return Running(existing, None, reused=True)
    prune_logs(folder)
    for attempt in range(2):  # a picked port can be taken before the server binds it: pick again once
        chosen = port or free_port()
        server_id = f"{kind}-{secrets.token_hex(3)}"
        log = folder / f"{server_id}.log"
        argv = build_argv(chosen)
        proc = spawn(argv, log, die_with_parent=not detach)
        state = ServerState(server_id, kind, model, served_name, chosen, proc.pid, time.time(), str(log), detach,
                            ephemeral, proc_start_time(proc.pid), command=argv)  # fmt: skip
        write_state(folder, state)
        try:
            ready_ms = wait_ready(state, proc, ready_timeout_s)
            result = warm_up(state, timeout_s=max(30.0, ready_timeout_s)) if warm else None
            return Running(state, proc, warmup=result, ready_ms=ready_ms)
        except ServerError:
            stop_server(folder, state, proc)
            if attempt == 0 and port is None and "address already in use" in log_tail(log).lower():
                continue
            raise
        except BaseException:
            stop_server(folder, state, proc)
            raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While active (main thread only), SIGTERM and SIGHUP raise KeyboardInterrupt, so `finally` blocks run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
