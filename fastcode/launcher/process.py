"""Server processes: a free port, start in a process group of their own, readiness, warm-up, reuse and stop.

`launch` reuses a live server for the same model or starts one (state file + log, see `state`), polls `/health`
then `/v1/models` until a deadline, and sends one warm-up request. A server that is neither detached nor kept alive
gets its parent-death signal set (Linux), so it goes away even if fastcode is killed with SIGKILL; a kept-alive one
runs under its supervisor (`keepalive`), which stops it once idle, and is leased while a run uses it. Stopping
signals the whole process group (`procgroup.stop_group`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastcode.launcher.procgroup import spawn, stop_group
from fastcode.launcher.state import (
    ServerState,
    list_states,
    proc_start_time,
    process_alive,
    prune_logs,
    release_lease,
    remove_state,
    take_lease,
    write_state,
)
from fastcode.models.warmup_request import WarmupResult, warmup_request

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
    lease: Path | None = None
    """This process's lease on a keep-alive server: release it (`release_lease`) when done with the server."""
    restored: int = 0
    """Prompt tokens the supervisor restored from the saved cache into the new server."""


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


def _reuse(folder: Path, kind: str, model: str) -> Running | None:
    """The running server for `model`, leased when it is a keep-alive one. The lease is checked against the state
    file after it is taken: a supervisor retiring its idle server removes the file before it looks for leases."""
    existing = find_running(folder, kind, model)
    if existing is None or existing.keep_alive_s <= 0:
        return None if existing is None else Running(existing, None, reused=True)
    lease = take_lease(folder, existing.id)
    if (folder / f"{existing.id}.json").exists() and process_alive(existing.pid, existing.proc_start):
        return Running(existing, None, reused=True, lease=lease)
    release_lease(lease)
    return None


def _supervised(folder: Path, server_id: str, port: int, keep_alive_s: float, argv: list[str],
                extra: Sequence[str]) -> list[str]:  # fmt: skip
    return [sys.executable, "-m", "fastcode.launcher.keepalive", "--folder", str(folder), "--id", server_id,
            "--idle", f"{keep_alive_s:g}", "--url", f"http://127.0.0.1:{port}", *extra, "--", *argv]  # fmt: skip


def _wait_supervisor(folder: Path, state: ServerState, proc: subprocess.Popen[bytes], deadline: float) -> int:
    """Wait for the supervisor's `<id>.ready` (written once it has restored the server's saved prompt cache); the
    number of tokens it restored."""
    ready = folder / f"{state.id}.ready"
    while not ready.exists():
        if proc.poll() is not None:
            raise ServerError(f"the keep-alive supervisor exited with code {proc.returncode}; last lines of "
                              f"{state.log}:\n{log_tail(state.log)}")  # fmt: skip
        if time.monotonic() > deadline:
            raise ServerError(f"the keep-alive supervisor did not report ready; last lines of {state.log}:\n"
                              f"{log_tail(state.log)}")  # fmt: skip
        time.sleep(0.05)
    try:
        return int(ready.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def warm_up(state: ServerState, timeout_s: float = 120.0) -> WarmupResult:
    """One `max_tokens: 1` request with fastcode's system prompt and tools, so the first real call is cached."""
    from fastcode.toolcalls.prompt import agent_prefix  # jinja2: loaded only when a server is warmed

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
    keep_alive_s: float = 0.0,
    supervisor_args: Sequence[str] = (),
) -> Running:
    """Reuse a running server for `model` or start one (argv from `build_argv(port)`), wait until ready, warm it.

    `keep_alive_s` > 0: the server runs under a keep-alive supervisor and outlives this process; the returned
    `Running.lease` (also taken on a reused keep-alive server) keeps it up until released; `supervisor_args` are
    passed to the supervisor (`--slots KEY`).
    On any failure, Ctrl-C included, a server started here is stopped before the exception propagates.
    """
    if reuse and (existing := _reuse(folder, kind, model)) is not None:
        return existing
    prune_logs(folder)
    for attempt in range(2):  # a picked port can be taken before the server binds it: pick again once
        chosen = port or free_port()
        server_id = f"{kind}-{secrets.token_hex(3)}"
        log = folder / f"{server_id}.log"
        argv = build_argv(chosen)
        lease = take_lease(folder, server_id) if keep_alive_s > 0 else None
        if keep_alive_s > 0:
            supervised = _supervised(folder, server_id, chosen, keep_alive_s, argv, supervisor_args)
            proc = spawn(supervised, log, die_with_parent=False)
        else:
            proc = spawn(argv, log, die_with_parent=not detach)
        state = ServerState(server_id, kind, model, served_name, chosen, proc.pid, time.time(), str(log), detach,
                            ephemeral, proc_start_time(proc.pid), command=argv, keep_alive_s=keep_alive_s)  # fmt: skip
        write_state(folder, state)
        try:
            started = time.monotonic()
            ready_ms = wait_ready(state, proc, ready_timeout_s)
            restored = _wait_supervisor(folder, state, proc, started + ready_timeout_s) if keep_alive_s > 0 else 0
            result = warm_up(state, timeout_s=max(30.0, ready_timeout_s)) if warm else None
            return Running(state, proc, warmup=result, ready_ms=ready_ms, lease=lease, restored=restored)
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
