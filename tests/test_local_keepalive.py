"""The warm local server with the real llama-server and the embedded model: a second run reuses it (no load, the
system prompt still cached), it stops once idle for `local.keep_alive` and its prompt cache survives the restart,
`serve stop` stops it, and neither a SIGKILLed supervisor nor a SIGKILLed fastcode leaves a llama-server behind.
Short keep-alives (2-3 s) and replies of a few tokens keep the module to a few server starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_cli
from llama_support import embedded_model, llama_env, llama_processes, needs_llama, server_pid

from fastcode.launcher.binaries import find_llama_server, supported_flags
from fastcode.launcher.llama import LlamaOptions, help_text, llama_command, model_alias
from fastcode.launcher.process import launch, stop_server
from fastcode.launcher.state import list_states, process_alive, release_lease

pytestmark = needs_llama
HELLO = ["exec", "say hello", "--local", "--max-steps", "1", "-c", "context.enabled=false",
         "-c", "models.default.max_tokens=4", "-c", "local.ctx=2048"]  # fmt: skip


def _wait_gone(pid: int, port: int, timeout_s: float) -> float:
    started = time.monotonic()
    while process_alive(pid) or llama_processes(port):
        assert time.monotonic() - started < timeout_s, f"still running after {timeout_s} s: {pid}, port {port}"
        time.sleep(0.1)
    return time.monotonic() - started


def _shared(env: dict[str, str]) -> Path:
    """Where kept-alive servers are recorded: the user cache, shared by every repo."""
    return Path(env["XDG_CACHE_HOME"]) / "fastcode" / "serve"


def _calls(repo: Path, run: str, *, warmup: bool = False) -> list[dict]:
    events = [json.loads(line) for line in (repo / ".fastcode" / "runs" / run / "trace.jsonl").read_text().splitlines()]
    return [e for e in events if e["type"] == "model_call_finished" and bool(e.get("warmup")) is warmup]


def _first_call(repo: Path, run: str) -> dict:
    return _calls(repo, run)[0]


def test_a_second_run_reuses_the_warm_server_until_serve_stop(sample_repo: Path, isolated_env: dict[str, str],
                                                              tmp_path: Path) -> None:  # fmt: skip
    env = llama_env(isolated_env, tmp_path)
    first = run_cli([*HELLO, "-c", "local.keep_alive=5m"], cwd=sample_repo, env=env, timeout=240)
    assert first.returncode in (0, 1), first.stderr
    assert "after its last request (local.keep_alive)" in first.stderr and "it stays up 5m" in first.stderr
    port, pid = server_pid(first.stderr)
    try:
        (state,) = list_states(_shared(env))
        assert (state.pid, state.keep_alive_s) == (pid, 300) and process_alive(pid)  # it outlived the run
        row = run_cli(["serve", "status"], cwd=sample_repo, env=env).stdout.splitlines()[1]
        assert row.startswith(state.id) and "keep-alive, " in row and row.endswith(" left")

        second = run_cli([*HELLO, "-c", "local.keep_alive=5m"], cwd=sample_repo, env=env, timeout=240)
        assert second.returncode in (0, 1), second.stderr
        assert f"using the running llama-server {state.id} at {state.base_url}" in second.stderr
        (run,) = [p.name for p in (sample_repo / ".fastcode" / "runs").iterdir() if p.name in second.stderr]
        call = _first_call(sample_repo, run)
        assert call["cached_tokens"] >= 0.9 * call["prompt_tokens"], call  # the system prompt was not prefilled again
        # no warm-up: it would have cut the server's cache of the first run's conversation back to the system prompt
        assert _calls(sample_repo, run, warmup=True) == []
        assert [s.pid for s in list_states(_shared(env))] == [pid]
    finally:
        stopped = run_cli(["serve", "stop", "--all"], cwd=sample_repo, env=env)
    assert stopped.returncode == 0 and stopped.stdout.startswith(f"stopped {state.id}")
    _wait_gone(pid, port, timeout_s=15)
    assert list_states(_shared(env)) == []


def test_the_server_stops_after_keep_alive_and_its_prompt_cache_survives(sample_repo: Path,
                                                                        isolated_env: dict[str, str],
                                                                        tmp_path: Path) -> None:  # fmt: skip
    """After keep_alive the server stops, saving its slots; the next run's new server restores them, so its first
    request finds the prompt cached (and no warm-up is sent: it would cut the restored conversation back)."""
    env = llama_env(isolated_env, tmp_path)
    folder = _shared(env)
    first = run_cli([*HELLO, "-c", "local.keep_alive=2"], cwd=sample_repo, env=env, timeout=240)
    assert first.returncode in (0, 1), first.stderr
    port, pid = server_pid(first.stderr)
    assert process_alive(pid) and llama_processes(port)
    assert 0.5 < _wait_gone(pid, port, timeout_s=15) < 10
    assert list_states(folder) == []
    (log,) = folder.glob("llama-*.log")
    assert "no activity for 2s: stopping the server" in log.read_text()
    if "--slot-save-path" not in supported_flags(help_text(find_llama_server())):
        return  # this llama-server cannot save its slots: nothing more to check
    assert "tokens of prompt cache" in log.read_text()  # "saved N tokens of prompt cache"

    second = run_cli([*HELLO, "-c", "local.keep_alive=2"], cwd=sample_repo, env=env, timeout=240)
    assert second.returncode in (0, 1), second.stderr
    port, pid = server_pid(second.stderr)
    (run,) = [p.name for p in (sample_repo / ".fastcode" / "runs").iterdir() if p.name in second.stderr]
    assert _calls(sample_repo, run, warmup=True) == []
    call = _first_call(sample_repo, run)
    assert call["cached_tokens"] >= 600, call  # the system prompt and tools at least (the task repeats the first run)
    _wait_gone(pid, port, timeout_s=15)
    (log,) = [p for p in folder.glob("llama-*.log") if f"pid {pid} supervises" in p.read_text()]
    assert "tokens of saved prompt cache" in log.read_text() and "the restored prompt cache held" in log.read_text()


def test_a_killed_supervisor_takes_llama_server_down(tmp_path: Path) -> None:
    gguf, command = embedded_model(), find_llama_server()

    def argv(port: int) -> list[str]:
        return llama_command(command, LlamaOptions(gguf, port, ctx=1024))[0]

    running = launch("llama", str(gguf), model_alias(gguf), argv, folder=tmp_path, warm=False, keep_alive_s=600)
    release_lease(running.lease)
    try:
        (server,) = llama_processes(running.state.port)
        assert server != running.state.pid and os.getpgid(server) == running.state.pid
        os.kill(running.state.pid, signal.SIGKILL)
        _wait_gone(server, running.state.port, timeout_s=15)
    finally:
        stop_server(tmp_path, running.state, running.proc)
    assert list_states(tmp_path) == []


def test_a_killed_fastcode_leaves_no_server_after_keep_alive(sample_repo: Path, isolated_env: dict[str, str],
                                                             tmp_path: Path) -> None:  # fmt: skip
    env = llama_env(isolated_env, tmp_path)
    cli = subprocess.Popen(
        [sys.executable, "-m", "fastcode", "exec", "fix the failing test", "--local", "-c", "local.keep_alive=3",
         "-c", "local.ctx=2048"],
        cwd=sample_repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert cli.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(line.startswith("fastcode run ") for line in lines):
        lines.append(cli.stderr.readline())
    port, pid = server_pid("".join(lines))
    cli.kill()  # SIGKILL mid-run: no cleanup in fastcode at all
    cli.wait()
    assert process_alive(pid)  # the supervisor outlives fastcode ...
    _wait_gone(pid, port, timeout_s=90)  # ... and stops the server once its last request is 3 s old
    assert list_states(_shared(env)) == []
