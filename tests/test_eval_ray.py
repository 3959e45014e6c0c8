"""`fastcode eval --ray`: the bundled suite through a real local Ray cluster (`ray start --head`, 2 CPUs), a worker
killed while it runs an instance, and the one-line errors. The cluster is stopped after the module, even when a test
fails, and no Ray process is left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli

from fastcode.evals.workspace import IDENTITY

pytest.importorskip("ray", reason="the scale extra (Ray) is not installed")

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "evals" / "suites"
BUNDLED = SUITES / "bundled.jsonl"
RAY = Path(sys.executable).parent / "ray"
FAST_TESTS = "agent.test_cmd=PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q"
TEST_CMD = "python -m pytest -q -p no:cacheprovider"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_env() -> dict[str, str]:
    env = dict(os.environ) | {"RAY_USAGE_STATS_ENABLED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (_parent(int(entry.name)), _cmdline(int(entry.name)))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie has ended; its parent, if any, reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cluster(temp_dir: str) -> list[int]:
    """The cluster's processes: those started with its temp folder in their arguments (GCS, raylet, agents) and
    everything below them (the workers). Never another cluster's: a developer's own Ray stays up."""
    processes = _processes()
    ours = {pid for pid, (_, cmdline) in processes.items() if temp_dir in cmdline and pid != os.getpid()}
    grew = True
    while grew:
        below = {pid for pid, (parent, _) in processes.items() if parent in ours} - ours
        ours |= below
        grew = bool(below)
    return sorted(ours)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A real head node with 2 CPUs on loopback; yields its address. Torn down by signalling its own processes (not
    `ray stop`, which would stop every cluster on the machine)."""
    temp_dir = tempfile.mkdtemp(prefix="fcray-", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    start = [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2", "--node-ip-address=127.0.0.1",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"]  # fmt: skip
    started = subprocess.run(start, env=_ray_env(), capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{port}"
    finally:
        pids = _cluster(temp_dir)  # once: a worker whose raylet is gone no longer has it as its parent
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 15
            while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_bundled_suite_through_ray_matches_a_local_run(
    ray_cluster: str, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    env = isolated_env | {"PYTHONPATH": str(ROOT)}
    local, remote = tmp_path / "local", tmp_path / "ray"
    done = run_cli(["eval", str(BUNDLED), "--gold", "--workers", "2", "--out", str(local)], cwd=tmp_path, env=env,
                   timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    args = ["eval", str(BUNDLED), "--gold", "--ray", ray_cluster, "--out", str(remote)]
    done = run_cli(args, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"on Ray ({ray_cluster}): 2 CPUs, 1 per instance" in done.stderr
    assert "[15/15] resolved 15/15" in done.stderr and "running" in done.stderr
    assert f"gold · model `gold` · 2 workers on Ray ({ray_cluster})" in done.stdout

    ours, theirs = _lines(remote / "results.jsonl"), _lines(local / "results.jsonl")
    assert [r["instance_id"] for r in ours] == [r["instance_id"] for r in theirs]  # suite order
    assert {r["instance_id"] for r in ours if r["resolved"]} == {r["instance_id"] for r in theirs if r["resolved"]}
    assert _lines(remote / "predictions.jsonl") == _lines(local / "predictions.jsonl")
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["resolved"] == 15 and summary["errors"] == 0 and summary["ray"] == ray_cluster
    for result in ours:  # each instance's files came back from the worker
        folder = remote / "instances" / result["instance_id"]
        assert (folder / "tests.log").is_file() and (folder / "model.patch").is_file()
        assert (folder / "model.patch").read_text() == (local / "instances" / result["instance_id"] / "model.patch")\
            .read_text()  # fmt: skip


def test_the_real_agent_runs_in_a_ray_task_on_a_shipped_trajectory(
    ray_cluster: str, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """The agent path: each task gets its scripted trajectory with it, starts its own scripted server and runs
    `fastcode exec` in its copy; the trace comes back to the driver."""
    out = tmp_path / "out"
    args = ["eval", str(BUNDLED), "--model", f"scripted:{SUITES / 'scripted'}", "--ray", ray_cluster,
            "--only", "textkit-wrap-exact-width", "--only", "stockroom-sku-case", "--out", str(out),
            "-c", FAST_TESTS, "--max-steps", "8"]  # fmt: skip
    done = run_cli(args, cwd=tmp_path, env=isolated_env | {"PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout
    results = {r["instance_id"]: r for r in _lines(out / "results.jsonl")}
    assert list(results) == ["textkit-wrap-exact-width", "stockroom-sku-case"]
    for result in results.values():
        assert result["resolved"] and result["agent_status"] == "finished" and result["model_calls"] == 4
        assert result["trace"] == str(out / "instances" / result["instance_id"] / "trace.jsonl")
        assert Path(result["trace"]).is_file() and result["cached_tokens"] > 0


def _git(cwd: Path, *args: str) -> str:
    env = dict(os.environ) | IDENTITY
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _git_suite(tmp_path: Path, setups: dict[int, str]) -> Path:
    """A git repository (not a plain folder: it travels as a git bundle) with a bug at tag `buggy`, and a suite of
    three instances on it (`setups`: a setup command for some of them, by index)."""
    repo = tmp_path / "calc"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_zero():\n"
        "    assert add(0, 0) == 0\n"
    )
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", "calc with a bug")
    _git(repo, "tag", "buggy")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    patch = _git(repo, "diff")
    _git(repo, "checkout", "--quiet", "calc.py")
    suite = tmp_path / "suite.jsonl"
    lines = []
    for number, base in enumerate(["buggy", "main", _git(repo, "rev-parse", "HEAD").strip()]):
        lines.append({"instance_id": f"calc-{number}", "problem_statement": "add subtracts", "repo_path": "calc",
                      "base_commit": base, "FAIL_TO_PASS": ["tests/test_calc.py::test_add"],
                      "PASS_TO_PASS": ["tests/test_calc.py::test_zero"], "test_cmd": TEST_CMD,
                      "patch": patch, "setup": [setups[number]] if number in setups else []})  # fmt: skip
    suite.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return suite


def _node_scratch(out: Path) -> list[Path]:
    """What the run's tasks left in this node's temp folder (`ray_pool.run_remote` names it by run and instance)."""
    key = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return list(Path(tempfile.gettempdir()).glob(f"fastcode-ray-{key}-*"))


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _find(predicate, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and predicate(_cmdline(int(entry.name))):
                    return int(entry.name)
            except OSError:
                continue
        time.sleep(0.2)
    raise AssertionError("process not found")


def _start_eval(suite: Path, address: str, out: Path, env: dict[str, str]) -> subprocess.Popen:
    """`fastcode eval SUITE --gold --ray ADDRESS` in the background."""
    args = [sys.executable, "-m", "fastcode", "eval", str(suite), "--gold", "--ray", address, "--out", str(out)]
    return subprocess.Popen(args, cwd=out.parent, env=env | {"PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_killed_worker_is_retried_and_every_instance_is_accounted_for(
    ray_cluster: str, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    marker = tmp_path / "first-attempt"  # the first instance's setup blocks on its first attempt only
    suite = _git_suite(tmp_path, {0: f"if [ ! -e {marker} ]; then touch {marker}; exec sleep 300; fi"})
    out = tmp_path / "out"
    proc = _start_eval(suite, ray_cluster, out, isolated_env)
    try:
        sleeper = _find(lambda cmd: cmd.startswith("sleep 300"), timeout=180)
        worker = _parent(sleeper)
        while not _cmdline(worker).startswith("ray::"):  # the Ray worker process running the instance
            worker = _parent(worker)
            assert worker > 1, "the blocking setup command does not run under a Ray worker"
        os.kill(worker, signal.SIGKILL)
        os.kill(sleeper, signal.SIGKILL)  # its orphan; the retry finds the marker and goes on
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    results = _lines(out / "results.jsonl")
    assert [r["instance_id"] for r in results] == ["calc-0", "calc-1", "calc-2"]
    assert all(r["status"] == "resolved" for r in results), results
    assert (out / "instances" / "calc-0" / "setup-1.log").is_file()
    assert "Eval:" in stdout
    # the retry cleared what the killed attempt left on the node; finished instances leave nothing
    assert not _node_scratch(out)


def test_an_instance_whose_worker_keeps_dying_is_an_error_and_the_others_go_on(
    ray_cluster: str, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    suite = _git_suite(tmp_path, {2: "exec sleep 302"})  # blocks on every attempt
    out = tmp_path / "out"
    proc = _start_eval(suite, ray_cluster, out, isolated_env)
    try:
        for _ in range(3):  # the first run and Ray's two retries
            sleeper = _find(lambda cmd: cmd.startswith("sleep 302"), timeout=180)
            worker = _parent(sleeper)
            assert _cmdline(worker).startswith("ray::")
            os.kill(worker, signal.SIGKILL)
            os.kill(sleeper, signal.SIGKILL)
            while Path(f"/proc/{sleeper}").exists():
                time.sleep(0.05)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr  # a run with an errored instance exits 1
    results = {r["instance_id"]: r for r in _lines(out / "results.jsonl")}
    assert [results[i]["status"] for i in ("calc-0", "calc-1", "calc-2")] == ["resolved", "resolved", "error"]
    assert results["calc-2"]["error"] == "its Ray worker died 3 times (Ray retried it 2 times)"


def test_ctrl_c_cancels_the_tasks_in_flight_and_keeps_what_finished(
    ray_cluster: str, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    suite = _git_suite(tmp_path, {1: "exec sleep 301"})
    out = tmp_path / "out"
    proc = _start_eval(suite, ray_cluster, out, isolated_env)
    try:
        sleeper = _find(lambda cmd: cmd.startswith("sleep 301"), timeout=180)
        deadline = time.monotonic() + 120
        results = out / "results.jsonl"
        while not (results.is_file() and len(_lines(results)) >= 2) and time.monotonic() < deadline:  # the others
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "continue with --resume" in stderr
    finished = {r["instance_id"]: r["status"] for r in _lines(out / "results.jsonl")}
    assert finished == {"calc-0": "resolved", "calc-2": "resolved"}
    assert not Path(f"/proc/{sleeper}").exists()  # the cancelled task ended what it had started on the node
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True
    assert not _node_scratch(out)


def test_no_cluster_is_one_line_and_exit_3(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    env = isolated_env | {"PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    args = ["eval", str(BUNDLED), "--gold", "--ray", f"127.0.0.1:{_free_port()}", "--out", str(tmp_path / "o")]
    done = run_cli(args, cwd=tmp_path, env=env, timeout=180)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastcode eval: no Ray cluster at")
    assert "ray start --head" in lines[0]


def test_without_ray_installed_the_flag_says_what_to_install(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = isolated_env | {"PYTHONPATH": f"{shadow.parent}{os.pathsep}{ROOT}"}
    done = run_cli(["eval", str(BUNDLED), "--gold", "--ray"], cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == "fastcode eval: --ray needs Ray: pip install 'fastcode[scale]'"


def test_keep_does_not_combine_with_ray(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    done = run_cli(["eval", str(BUNDLED), "--gold", "--ray", "local", "--keep"], cwd=tmp_path, env=isolated_env)
    assert done.returncode == 2 and "--keep does not combine with --ray" in done.stderr


@pytest.mark.parametrize(("token", "mode", "expected"), [(True, None, "token"), (False, None, None),
                                                         (True, "disabled", "disabled")])  # fmt: skip
def test_a_driver_uses_token_auth_as_ray_start_does(
    token: bool, mode: str | None, expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastcode.evals.ray_pool import _token_auth_like_ray_start

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", mode or "")  # recorded first, so whatever the call sets is undone
    if mode is None:
        monkeypatch.delenv("RAY_AUTH_MODE")
    if token:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("x" * 64)
    _token_auth_like_ray_start()
    assert os.environ.get("RAY_AUTH_MODE") == expected
