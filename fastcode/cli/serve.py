"""`fastcode serve`: start llama-server or vLLM tuned for the agent, list the running servers, stop them.

    fastcode serve llama [--model PATH.gguf] [--port N] [--ctx N] [--draft PATH.gguf] [--lookup] [--detach]
    fastcode serve vllm --model NAME_OR_PATH [--port N] [--max-model-len N] [--detach]
    fastcode serve status
    fastcode serve stop [ID | --all]

Without --detach the server runs until Ctrl-C (or SIGTERM) and is stopped with fastcode; with --detach it keeps
running, recorded in the state folder (`<repo>/.fastcode/serve/` inside a git repository, else
`~/.cache/fastcode/serve/`), and later runs for the same model reuse it. `status` also lists the servers local runs
keep alive (`local.keep_alive`), with the time each has left; `stop` stops them too. Exit codes: 0 ok, 2 usage / not
installed, 3 the server did not become ready, 130 interrupted while starting.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fastcode.core.errors import fail
from fastcode.launcher.binaries import MissingBinary, find_llama_server, find_vllm
from fastcode.launcher.keepalive import format_duration
from fastcode.launcher.process import (
    Running,
    ServerError,
    find_running,
    launch,
    log_tail,
    signals_interrupt,
    stop_server,
)
from fastcode.launcher.state import ServerState, idle_left, list_states, release_lease, state_dir, state_dirs

VLLM_READY_FLOOR_S = 600.0
"""vLLM loads weights and compiles graphs: it gets at least this long to become ready."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastcode serve", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True, metavar="{llama,vllm,status,stop}")
    p = sub.add_parser("llama", help="start llama-server (default model: local.gguf, else the embedded Qwen)")
    p.add_argument("--model", help="GGUF file to serve (default: local.gguf, else the embedded Qwen2.5-Coder-1.5B)")
    p.add_argument("--ctx", type=int, help="context size in tokens (default: local.ctx)")
    p.add_argument("--draft", type=Path, help="a small GGUF of the same family for speculative decoding")
    p.add_argument("--lookup", action="store_true", help="n-gram lookup decoding (no draft model; suits edits)")
    _common(p)
    p = sub.add_parser("vllm", help="start vllm serve (needs a GPU)")
    p.add_argument("--model", required=True, help="Hugging Face model name or local path")
    p.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    p.add_argument("--served-model-name", help="model name requests use (default: --model)")
    _common(p)
    sub.add_parser("status", help="list running servers: kind, model, port, pid, uptime, mode")
    p = sub.add_parser("stop", help="stop a server (or all of them)")
    p.add_argument("id", nargs="?", help="server id, a unique prefix of it, or its port")
    p.add_argument("--all", action="store_true", help="stop every running server")
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--detach", action="store_true", help="keep running after fastcode exits; reused by later runs")
    p.add_argument("--ready-timeout", type=float, help="seconds to wait for /health (default: local.ready_timeout_s)")


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if args.action == "status":
            return status()
        if args.action == "stop":
            return stop(args.id, every=args.all)
        return start(args)
    except MissingBinary as exc:
        return fail(str(exc))


def _settings() -> tuple[str, str, int, float]:
    """local.llama_server, local.gguf, local.ctx and local.ready_timeout_s from the merged config."""
    from fastcode.core.config import load_settings
    from fastcode.core.paths import find_repo_root

    local = load_settings(find_repo_root(Path.cwd())).settings.local
    return local.llama_server, local.gguf, local.ctx, local.ready_timeout_s


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class _Plan:
    """What to start: kind, the model key used for reuse, the served name, and argv for a port."""

    def __init__(self, kind: str, key: str, name: str, build: Callable[[int], tuple[list[str], list[str]]]) -> None:
        self.kind, self.key, self.name, self._build = kind, key, name, build
        self.notes: list[str] = []

    def argv(self, port: int) -> list[str]:
        argv, warnings = self._build(port)
        self.notes.extend(warnings)
        return argv


def _llama_plan(args: argparse.Namespace, llama_server: str, gguf: str, ctx: int) -> _Plan:
    from fastcode.launcher.embedded import resolve_gguf
    from fastcode.launcher.llama import LlamaOptions, llama_command, model_alias

    command = find_llama_server(llama_server)  # first: resolving the embedded model may hash 1.1 GB
    model = resolve_gguf(gguf, args.model)
    if args.draft is not None and not args.draft.is_file():
        raise MissingBinary(f"--draft {args.draft}: no such GGUF file")
    draft = args.draft.resolve() if args.draft else None
    ctx = args.ctx or ctx

    def build(port: int) -> tuple[list[str], list[str]]:
        return llama_command(command, LlamaOptions(model, port, ctx, draft=draft, lookup=args.lookup))

    return _Plan("llama", str(model), model_alias(model), build)


def _vllm_plan(args: argparse.Namespace) -> _Plan:
    from fastcode.launcher.vllm import VllmOptions, vllm_command

    command = find_vllm()
    name = args.served_model_name or args.model

    def build(port: int) -> tuple[list[str], list[str]]:
        return vllm_command(command, VllmOptions(args.model, port, args.max_model_len, name))

    return _Plan("vllm", args.model, name, build)


def start(args: argparse.Namespace) -> int:
    from fastcode.core.config import ConfigError

    try:
        llama_server, gguf, ctx, ready_timeout = _settings()
    except ConfigError as exc:
        return fail(str(exc))
    if args.port is not None and not 0 < args.port < 65536:
        return fail(f"--port {args.port}: not a port number")
    if args.action == "llama":
        plan = _llama_plan(args, llama_server, gguf, ctx)
    else:
        plan = _vllm_plan(args)
        ready_timeout = max(ready_timeout, VLLM_READY_FLOOR_S)
    return _run(plan, args, args.ready_timeout or ready_timeout)


def _run(plan: _Plan, args: argparse.Namespace, ready_timeout: float) -> int:
    folder = state_dir()
    with signals_interrupt():
        try:
            if args.port is not None and find_running(folder, plan.kind, plan.key) is None and _port_taken(args.port):
                return fail(f"--port {args.port}: already in use")
            running = launch(plan.kind, plan.key, plan.name, plan.argv, folder=folder, port=args.port,
                             detach=args.detach, ready_timeout_s=ready_timeout)  # fmt: skip
            release_lease(running.lease)  # a reused keep-alive server: this command does not use it itself
        except ServerError as exc:
            return fail(str(exc), 3)
        except KeyboardInterrupt:
            return fail("interrupted while the server was starting (it was stopped)", 130)
        if args.detach or running.reused:
            _announce(running, plan.notes, detached=True)
            return 0
        return _foreground(folder, running, plan.notes)


def _foreground(folder: Path, running: Running, notes: list[str]) -> int:
    """Announce the server, then wait until Ctrl-C / SIGTERM (exit 0), `serve stop` (0) or its death (1)."""
    state, proc = running.state, running.proc
    assert proc is not None
    try:
        _announce(running, notes, detached=False)
        code = proc.wait()
    except KeyboardInterrupt:
        sys.stderr.write(f"fastcode: stopping {state.id}\n")
        return 0
    finally:
        stopped_elsewhere = not (folder / f"{state.id}.json").exists()
        stop_server(folder, state, proc)
    if stopped_elsewhere:  # `fastcode serve stop` from another terminal
        return 0
    return fail(f"{state.kind} server exited with code {code}; last lines of {state.log}:\n{log_tail(state.log)}", 1)


def _announce(running: Running, notes: list[str], *, detached: bool) -> None:
    for note in notes:
        sys.stderr.write(f"fastcode: warning: {note}\n")
    s = running.state
    if running.reused:
        print(f"already running: {s.id} · {s.served_name} · {s.base_url} · pid {s.pid} (reused)")
    else:
        warm = running.warmup
        warmed = f" · warm-up {warm.ms:.0f} ms" if warm and warm.ok else ""
        print(f"{s.kind} ready: {s.id} · {s.served_name} · {s.base_url} · pid {s.pid} · "
              f"in {running.ready_ms / 1000:.1f} s{warmed}")  # fmt: skip
        if warm and not warm.ok:
            sys.stderr.write(f"fastcode: warning: warm-up request failed: {warm.error}\n")
    print(f"log: {s.log}")
    print(f'use: fastcode exec "TASK" --base-url {s.base_url} --model {s.served_name}')
    print(f"stop: fastcode serve stop {s.id}" if detached or running.reused else "stop: Ctrl-C")
    sys.stdout.flush()


def _uptime(started: float) -> str:
    seconds = max(0, int(time.time() - started))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _mode(folder: Path, state: ServerState) -> str:
    if state.keep_alive_s > 0:
        left = idle_left(folder, state)
        return "keep-alive, in use" if left is None else f"keep-alive, {format_duration(left)} left"
    return "run" if state.ephemeral else "detached" if state.detached else "foreground"


def _all_states() -> list[tuple[Path, ServerState]]:
    return [(folder, state) for folder in state_dirs() for state in list_states(folder)]


def status() -> int:
    found = _all_states()
    if not found:
        print(f"no servers running (state: {', '.join(map(str, state_dirs()))})")
        return 0
    from fastcode.core.tables import render

    rows = [
        (s.id, s.kind, s.served_name, str(s.port), str(s.pid), _uptime(s.started), _mode(folder, s))
        for folder, s in found
    ]
    print(render(("ID", "KIND", "MODEL", "PORT", "PID", "UPTIME", "MODE"), rows, right=(3, 4)))
    return 0


def _match(states: list[ServerState], key: str) -> list[ServerState]:
    exact = [s for s in states if s.id == key or str(s.port) == key]
    return exact or [s for s in states if s.id.startswith(key)]


def stop(key: str | None, *, every: bool) -> int:
    found = _all_states()
    states = [state for _, state in found]
    folders = {state.id: folder for folder, state in found}
    if every:
        chosen = states
    elif key is not None:
        chosen = _match(states, key)
        if len(chosen) != 1:
            known = ", ".join(s.id for s in states) or "none running"
            what = "no server" if not chosen else "several servers"
            return fail(f"{what} match {key!r} (running: {known})")
    elif len(states) > 1:
        return fail(f"several servers running: give an id or --all ({', '.join(s.id for s in states)})")
    else:
        chosen = states
    if not chosen:
        print(f"no servers running (state: {', '.join(map(str, state_dirs()))})")
    for state in chosen:
        stop_server(folders[state.id], state)
        print(f"stopped {state.id} ({state.kind} {state.served_name}, pid {state.pid})")
    return 0
