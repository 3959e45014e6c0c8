"""The keep-alive supervisor with the vLLM stand-in as its server (tests/data/launcher/fake_vllm.py: real processes
and sockets, no GPU): leases keep it up, idleness stops it, `serve status | stop` see it, and neither a killed
supervisor nor a killed client leaves a server behind. tests/test_local_keepalive.py does the same with the real
llama-server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_cli
from test_launcher_process import group_members

from fastcode.core.config import ConfigError, load_settings
from fastcode.launcher.binaries import find_vllm
from fastcode.launcher.keepalive import _retire, format_duration
from fastcode.launcher.process import Running, launch, stop_server
from fastcode.launcher.slot_cache import check, restore, save, slots_dir, usable
from fastcode.launcher.state import idle_left, list_states, live_leases, process_alive, release_lease, take_lease
from fastcode.launcher.vllm import VllmOptions, vllm_command

FAKE_VLLM = Path(__file__).parent / "data" / "launcher" / "fake_vllm.py"


def _build(model: str) -> Callable[[int], list[str]]:
    command = find_vllm([sys.executable, str(FAKE_VLLM)])
    return lambda port: vllm_command(command, VllmOptions(model, port))[0]


def _kept(folder: Path, keep_alive_s: float, model: str = "some/model") -> Running:
    return launch("vllm", model, model, _build(model), folder=folder, warm=False, keep_alive_s=keep_alive_s)


def _gone(pgid: int, timeout_s: float) -> float:
    """Seconds until no process of group `pgid` runs (fails after `timeout_s`)."""
    started = time.monotonic()
    while group_members(pgid):
        assert time.monotonic() - started < timeout_s, f"group {pgid} still running: {group_members(pgid)}"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_leased_server_stays_up_then_stops_once_idle(tmp_path: Path) -> None:
    running = _kept(tmp_path, 1.0)
    state = running.state
    try:
        assert state.keep_alive_s == 1.0 and not state.ephemeral and running.lease is not None
        assert len(group_members(state.pid)) == 2  # the supervisor and its server, one process group
        time.sleep(2.0)  # longer than keep_alive: the lease holds it
        assert [s.id for s in list_states(tmp_path)] == [state.id] and idle_left(tmp_path, state) is None
        again = _kept(tmp_path, 1.0)
        assert again.reused and again.state.id == state.id and again.lease is not None
        assert live_leases(tmp_path, state.id) == 2
        release_lease(running.lease)
        release_lease(again.lease)
        assert 0 < (idle_left(tmp_path, state) or 0) <= 1.0
        assert 0.8 <= _gone(state.pid, timeout_s=10) < 4
    finally:
        stop_server(tmp_path, state)
    assert list_states(tmp_path) == [] and not (tmp_path / f"{state.id}.json").exists()
    assert not (tmp_path / f"{state.id}.leases").exists()
    assert "no activity for 1s: stopping the server" in Path(state.log).read_text()


def test_serve_status_and_stop(sample_repo: Path, isolated_env: dict[str, str], tmp_path: Path) -> None:
    folder = sample_repo / ".fastcode" / "serve"
    running = _kept(folder, 600.0)
    release_lease(running.lease)
    env = dict(isolated_env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    try:
        header, row = run_cli(["serve", "status"], cwd=sample_repo, env=env).stdout.splitlines()
        assert header.split()[-1] == "MODE"
        assert row.split()[:2] == [running.state.id, "vllm"] and re.search(r"keep-alive, (10m|9m[0-5]\ds) left$", row)
        lease = take_lease(folder, running.state.id)
        assert run_cli(["serve", "status"], cwd=sample_repo, env=env).stdout.rstrip().endswith("keep-alive, in use")
        release_lease(lease)
        stopped = run_cli(["serve", "stop", running.state.id], cwd=sample_repo, env=env)
        assert stopped.returncode == 0 and stopped.stdout.startswith(f"stopped {running.state.id}")
        assert _gone(running.state.pid, timeout_s=15) < 15
    finally:
        stop_server(folder, running.state)
    assert list_states(folder) == []


def test_a_killed_supervisor_takes_its_server_down(tmp_path: Path) -> None:
    running = _kept(tmp_path, 600.0)
    supervisor = running.state.pid
    (server,) = [pid for pid in group_members(supervisor) if pid != supervisor]
    os.kill(supervisor, signal.SIGKILL)
    running.proc.wait()  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while process_alive(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(server)
    assert list_states(tmp_path) == []  # the state of a dead supervisor is pruned


def test_a_killed_client_does_not_keep_the_server_up(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves a lease behind: its process is gone, so the supervisor ignores it."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from fastcode.launcher.process import launch\n"
        "from fastcode.launcher.vllm import VllmOptions, vllm_command\n"
        f"command = [sys.executable, {str(FAKE_VLLM)!r}]\n"
        "build = lambda port: vllm_command(command, VllmOptions('m', port))[0]\n"
        f"running = launch('vllm', 'm', 'm', build, folder=Path({str(tmp_path)!r}), warm=False, keep_alive_s=1.0)\n"
        "print(running.state.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    client = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    supervisor = int(client.stdout.readline())
    time.sleep(1.5)
    assert process_alive(supervisor)  # leased by the live client
    client.kill()
    client.wait()
    assert _gone(supervisor, timeout_s=10) < 5
    assert list_states(tmp_path) == []


def test_a_lease_taken_while_retiring_keeps_the_server(tmp_path: Path) -> None:
    running = _kept(tmp_path, 600.0)
    try:
        path = tmp_path / f"{running.state.id}.json"
        saved = path.read_bytes()
        assert not _retire(tmp_path, running.state.id)  # this process still holds the launch lease
        assert path.read_bytes() == saved
        release_lease(running.lease)
        assert _retire(tmp_path, running.state.id) and not path.exists()
        assert _gone(running.state.pid, timeout_s=10) < 10  # its state file gone, the supervisor stops
    finally:
        stop_server(tmp_path, running.state)


@pytest.mark.parametrize(
    ("value", "seconds"), [("10m", 600), ("90s", 90), ("1h", 3600), ("2.5", 2.5), ("0", 0), ("'45'", 45)]
)
def test_keep_alive_durations(value: str, seconds: float, sample_repo: Path, isolated_env: dict[str, str]) -> None:
    assert load_settings(sample_repo, overrides=[f"local.keep_alive={value}"]).settings.local.keep_alive == seconds


def test_a_bad_keep_alive_is_a_config_error(sample_repo: Path, isolated_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"local\.keep_alive: expected seconds or a duration such as 90s, 10m or 1h"):
        load_settings(sample_repo, overrides=["local.keep_alive='soon'"])
    assert load_settings(sample_repo).settings.local.keep_alive == 600


@pytest.mark.parametrize(("seconds", "text"), [(600, "10m"), (90, "1m30s"), (3, "3s"), (5400, "1h30m"), (7200, "2h")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_supervisor_usage() -> None:
    done = subprocess.run([sys.executable, "-m", "fastcode.launcher.keepalive", "--folder", "/tmp", "--id", "x",
                           "--idle", "1", "--url", "http://127.0.0.1:1"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "no server command after --" in done.stderr


@contextmanager
def _metrics(text: str) -> Iterator[str]:
    """A server over a real socket whose /metrics says `text` (what llama-server reports after a request)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _counters(computed: int, cached: int) -> str:
    return f"llamacpp:prompt_tokens_total {computed}\nllamacpp:prompt_tokens_cached_total {cached}\n"


def test_a_restored_cache_that_does_not_hold_is_not_used_again(tmp_path: Path) -> None:
    slots_dir().mkdir(parents=True)
    (slots_dir() / "k1-slot0.bin").write_bytes(b"kv")
    with _metrics(_counters(0, 0)) as url:
        assert check(url, "k1") is None  # no request yet: cannot tell
    with _metrics(_counters(3, 1449)) as url:
        assert check(url, "k1") is True and usable("k1")
    with _metrics(_counters(1452, 0)) as url:  # reported restored, then the whole prompt recomputed
        assert check(url, "k1") is False
        assert not usable("k1") and not (slots_dir() / "k1-slot0.bin").exists()
        assert restore(url, "k1") == 0 and save(url, "k1") == 0  # quietly cold from now on
    assert usable("k2") and not usable("")


def test_a_server_whose_cache_holds_a_conversation_gets_no_warm_up(tmp_path: Path) -> None:
    from dataclasses import replace

    from fastcode.core.config import load_settings
    from fastcode.launcher.embedded import LocalEndpoint, with_local

    endpoint = LocalEndpoint("http://127.0.0.1:9/v1", "m", 1, "llama-1", tmp_path / "m.gguf", 512)
    settings = load_settings(tmp_path).settings
    assert with_local(settings, endpoint).agent.warmup == "auto"  # a new server: warm it while gathering
    for holding in (replace(endpoint, reused=True, holds_prompt=True), replace(endpoint, holds_prompt=True)):
        assert with_local(settings, holding).agent.warmup == "never"
    asked = load_settings(tmp_path, overrides=["agent.warmup='always'"]).settings
    assert with_local(asked, replace(endpoint, holds_prompt=True)).agent.warmup == "always"
