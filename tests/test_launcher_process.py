"""Ports, state files, process groups, readiness and warm-up, with the vLLM stand-in (tests/data/launcher/
fake_vllm.py: the recorded `vllm serve --help` plus fastcode's scripted OpenAI-compatible server)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastcode.launcher.binaries import find_vllm
from fastcode.launcher.process import ServerError, free_port, http_status, launch, spawn, stop_group, stop_server
from fastcode.launcher.state import ServerState, list_states, proc_start_time, process_alive, state_dir, write_state
from fastcode.launcher.vllm import VllmOptions, vllm_command

FAKE_VLLM = Path(__file__).parent / "data" / "launcher" / "fake_vllm.py"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _state(folder: Path, pid: int, **extra: object) -> ServerState:
    fields = dict(
        id="llama-abc123",
        kind="llama",
        model="/m.gguf",
        served_name="m",
        port=1,
        pid=pid,
        started=time.time(),
        log=str(folder / "llama-abc123.log"),
        detached=True,
    )
    return ServerState(**{**fields, **extra})  # type: ignore[arg-type]


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_state_dir_is_the_repo_inside_git_else_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert state_dir(repo / "src") == repo / ".fastcode" / "serve"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert state_dir(tmp_path) == tmp_path / "cache" / "fastcode" / "serve"


def test_state_files_round_trip_and_dead_servers_are_pruned(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    finished = subprocess.Popen(["true"])
    finished.wait()
    try:
        write_state(tmp_path, _state(tmp_path, sleeper.pid, proc_start=proc_start_time(sleeper.pid)))
        write_state(tmp_path, _state(tmp_path, finished.pid, id="vllm-dead00", kind="vllm"))
        write_state(tmp_path, _state(tmp_path, sleeper.pid, id="llama-recycled", proc_start="1"))  # pid reused
        assert [s.id for s in list_states(tmp_path)] == ["llama-abc123"]
        assert sorted(p.name for p in tmp_path.glob("*.json")) == ["llama-abc123.json"]
        assert (tmp_path / ".gitignore").read_text() == "*\n"
        assert process_alive(sleeper.pid) and not process_alive(sleeper.pid, "1")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not process_alive(sleeper.pid)


def test_stop_group_takes_the_children_too(tmp_path: Path) -> None:
    proc = spawn(["sh", "-c", "sleep 60 & sleep 60 & wait"], tmp_path / "x.log", die_with_parent=True)
    deadline = time.monotonic() + 5
    while len(group_members(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(group_members(proc.pid)) == 3
    stop_group(proc.pid, proc=proc, grace_s=5)
    assert group_members(proc.pid) == [] and proc.returncode is not None


def test_stop_group_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = spawn(["sh", "-c", "trap '' TERM; sleep 60 & wait"], tmp_path / "x.log", die_with_parent=True)
    time.sleep(0.2)
    started = time.monotonic()
    stop_group(proc.pid, proc=proc, grace_s=0.5)
    assert group_members(proc.pid) == []
    assert 0.5 <= time.monotonic() - started < 5


def _fake_vllm_build(model: str, name: str = "") -> object:
    command = find_vllm([sys.executable, str(FAKE_VLLM)])
    return lambda port: vllm_command(command, VllmOptions(model, port, served_name=name))[0]


def test_launch_waits_for_readiness_warms_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    build = _fake_vllm_build("Qwen/Qwen2.5-Coder-7B-Instruct", "coder")
    running = launch(
        "vllm",
        "Qwen/Qwen2.5-Coder-7B-Instruct",
        "coder",
        build,
        folder=tmp_path,
        detach=True,  # type: ignore[arg-type]
        ready_timeout_s=30,
    )
    try:
        assert http_status(running.state.base_url + "/models") == 200
        assert running.warmup is not None and running.warmup.ok and running.warmup.prompt_tokens > 0
        again = launch("vllm", "Qwen/Qwen2.5-Coder-7B-Instruct", "coder", build, folder=tmp_path)  # type: ignore[arg-type]
        assert again.reused and again.state.pid == running.state.pid and again.proc is None
        assert [s.id for s in list_states(tmp_path)] == [running.state.id]
    finally:
        stop_server(tmp_path, running.state, running.proc)
    assert not process_alive(running.state.pid) and list_states(tmp_path) == []


def test_an_ephemeral_server_is_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    build = _fake_vllm_build("some/model")
    first = launch("vllm", "some/model", "some/model", build, folder=tmp_path, ephemeral=True, warm=False)  # type: ignore[arg-type]
    try:
        second = launch("vllm", "some/model", "some/model", build, folder=tmp_path, warm=False)  # type: ignore[arg-type]
        assert not second.reused and second.state.pid != first.state.pid
        stop_server(tmp_path, second.state, second.proc)
    finally:
        stop_server(tmp_path, first.state, first.proc)


@pytest.mark.parametrize(("mode", "message"), [("hang", "not ready after 1.5 s"), ("crash", "exited with code 1")])
def test_a_server_that_never_gets_ready_is_stopped_with_its_log_tail(
    mode: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_VLLM_MODE", mode)
    with pytest.raises(ServerError) as failed:
        launch("vllm", "m", "m", _fake_vllm_build("m"), folder=tmp_path, ready_timeout_s=1.5)  # type: ignore[arg-type]
    assert message in str(failed.value)
    assert "fake vllm: loading m" in str(failed.value)  # the log tail
    assert list_states(tmp_path) == [] and not list(tmp_path.glob("*.json"))
    if mode == "hang":
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_fake(p)]


def _is_fake(proc: Path) -> bool:
    try:
        cmdline = (proc / "cmdline").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"fake_vllm.py" in cmdline and b"serve" in cmdline and state != "Z"


@pytest.mark.parametrize("threads", [0, 1])
def test_a_server_dies_with_a_killed_fastcode(threads: int, tmp_path: Path) -> None:
    """SIGKILL leaves fastcode no chance to clean up: the parent-death signal stops the server anyway (by prctl
    when fastcode is single-threaded, through setpriv when another thread runs)."""
    code = (
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "from fastcode.launcher.process import spawn\n"
        f"for _ in range({threads}): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        f"proc = spawn(['sleep', '60'], Path({str(tmp_path / 'x.log')!r}), die_with_parent=True)\n"
        "print(proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(0.2)
    assert process_alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child)
