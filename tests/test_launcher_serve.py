"""`fastcode serve vllm | status | stop` through the real CLI, with the vLLM stand-in as FASTCODE_VLLM (vLLM itself
needs a GPU): command line, --detach and reuse, status, stop by id / prefix / --all, foreground teardown."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from fastcode.launcher.process import http_status
from fastcode.launcher.state import list_states, process_alive

FAKE_VLLM = Path(__file__).parent / "data" / "launcher" / "fake_vllm.py"
MODEL = "Qwen/Qwen2.5-Coder-7B-Instruct"


@pytest.fixture
def serve_env(isolated_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return dict(
        isolated_env,
        FASTCODE_VLLM=f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_VLLM))}",
        FAKE_VLLM_ARGV=str(tmp_path / "argv.json"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )


def _states(repo: Path) -> list:
    return list_states(repo / ".fastcode" / "serve")


def test_detached_vllm_status_reuse_and_stop(sample_repo: Path, serve_env: dict[str, str], tmp_path: Path) -> None:
    started = run_cli(["serve", "vllm", "--model", MODEL, "--max-model-len", "8192", "--detach"], cwd=sample_repo,
                      env=serve_env)  # fmt: skip
    assert started.returncode == 0, started.stderr
    (state,) = _states(sample_repo)
    try:
        assert f"vllm ready: {state.id} · {MODEL} · http://127.0.0.1:{state.port}/v1" in started.stdout
        argv = json.loads((tmp_path / "argv.json").read_text())
        assert argv == ["serve", MODEL, "--host", "127.0.0.1", "--port", str(state.port), "--enable-prefix-caching",
                        "--enable-prompt-tokens-details", "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
                        "--served-model-name", MODEL, "--max-model-len", "8192"]  # fmt: skip
        assert http_status(state.base_url + "/models") == 200
        assert Path(state.log).parent == sample_repo / ".fastcode" / "serve"

        again = run_cli(["serve", "vllm", "--model", MODEL, "--detach"], cwd=sample_repo, env=serve_env)
        assert again.returncode == 0 and f"already running: {state.id}" in again.stdout
        assert [s.pid for s in _states(sample_repo)] == [state.pid]

        status = run_cli(["serve", "status"], cwd=sample_repo, env=serve_env)
        header, row = status.stdout.splitlines()
        assert header.split() == ["ID", "KIND", "MODEL", "PORT", "PID", "UPTIME", "MODE"]
        assert row.split()[:5] == [state.id, "vllm", MODEL, str(state.port), str(state.pid)]
        assert row.split()[-1] == "detached"

        unknown = run_cli(["serve", "stop", "nope"], cwd=sample_repo, env=serve_env)
        assert unknown.returncode == 2 and f"no server match 'nope' (running: {state.id})" in unknown.stderr
        stopped = run_cli(["serve", "stop", state.id[:7]], cwd=sample_repo, env=serve_env)
        assert stopped.returncode == 0 and stopped.stdout.startswith(f"stopped {state.id}")
    finally:
        run_cli(["serve", "stop", "--all"], cwd=sample_repo, env=serve_env)
    assert not process_alive(state.pid)
    assert run_cli(["serve", "status"], cwd=sample_repo, env=serve_env).stdout.startswith("no servers running")
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=sample_repo, capture_output=True, text=True).stdout == ""
    )


def test_stop_all(sample_repo: Path, serve_env: dict[str, str]) -> None:
    for model in ("a/one", "b/two"):
        assert run_cli(["serve", "vllm", "--model", model, "--detach"], cwd=sample_repo, env=serve_env).returncode == 0
    states = _states(sample_repo)
    assert len(states) == 2
    ambiguous = run_cli(["serve", "stop"], cwd=sample_repo, env=serve_env)
    assert ambiguous.returncode == 2 and "several servers running" in ambiguous.stderr
    result = run_cli(["serve", "stop", "--all"], cwd=sample_repo, env=serve_env)
    assert result.returncode == 0 and result.stdout.count("stopped vllm-") == 2
    assert not any(process_alive(s.pid) for s in states)


@pytest.mark.parametrize("how", ["sigterm", "stop-command"])
def test_a_foreground_server_goes_away_with_fastcode(how: str, sample_repo: Path, serve_env: dict[str, str]) -> None:
    cli = subprocess.Popen([sys.executable, "-m", "fastcode", "serve", "vllm", "--model", MODEL], cwd=sample_repo,
                           env=serve_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert cli.stdout is not None and "vllm ready" in cli.stdout.readline()
        (state,) = _states(sample_repo)
        assert state.detached is False
        if how == "sigterm":
            cli.send_signal(signal.SIGTERM)
        else:
            assert run_cli(["serve", "stop", state.id], cwd=sample_repo, env=serve_env).returncode == 0
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    deadline = time.monotonic() + 5
    while process_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(state.pid)
    assert not (sample_repo / ".fastcode" / "serve" / f"{state.id}.json").exists()


def test_a_server_that_fails_reports_its_log_and_exit_3(sample_repo: Path, serve_env: dict[str, str]) -> None:
    env = dict(serve_env, FAKE_VLLM_MODE="crash")
    result = run_cli(["serve", "vllm", "--model", MODEL, "--ready-timeout", "20"], cwd=sample_repo, env=env)
    assert result.returncode == 3
    assert "vllm server exited with code 1 before it was ready" in result.stderr
    assert "CUDA out of memory" in result.stderr
    assert _states(sample_repo) == []


def test_a_taken_port_is_a_usage_error(sample_repo: Path, serve_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli(["serve", "vllm", "--model", MODEL, "--port", str(port)], cwd=sample_repo, env=serve_env)
    assert (result.returncode, result.stderr) == (2, f"fastcode: --port {port}: already in use\n")


def test_serve_usage_errors(sample_repo: Path, serve_env: dict[str, str]) -> None:
    assert run_cli(["serve"], cwd=sample_repo, env=serve_env).returncode == 2
    assert run_cli(["serve", "vllm"], cwd=sample_repo, env=serve_env).returncode == 2
    missing = run_cli(["serve", "llama", "--model", "/nope/model.gguf"], cwd=sample_repo, env=serve_env)
    assert (missing.returncode, missing.stderr) == (2, "fastcode: --model /nope/model.gguf: no such GGUF file\n")
    assert os.environ.get("FASTCODE_VLLM") is None  # the fixture's environment stays in the subprocesses
