"""Issue 18: the commands the agent runs, and test runs, are confined by the kernel (Landlock, user/mount/network
namespaces) — no mocks: real commands through the real CLI, the `run` tool and both test runners."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from conftest import run_cli

from fastcode.bench.case_study import make_case_repo
from fastcode.context import testcmd
from fastcode.core.config import SandboxSection
from fastcode.sandbox.policy import Sandbox, support
from fastcode.tools.base import ToolContext
from fastcode.tools.shell import Run, RunArgs

pytestmark = pytest.mark.skipif(not support().enforced, reason="this kernel has no Landlock")
HERE = Path(__file__).parent


def _run(repo: Path, command: str, **section: object) -> str:
    box = Sandbox.from_settings(SandboxSection(**section))
    try:
        result = asyncio.run(Run().run(RunArgs(command=command, timeout_s=30), ToolContext(repo, sandbox=box)))
    finally:
        box.close()
    return result.output


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    make_case_repo(repo)
    outside.mkdir()
    (outside / "canary.txt").write_text("canary-content\n")
    return repo, outside


def test_the_attack_of_the_issue_reads_but_cannot_write_outside(layout) -> None:
    repo, outside = layout
    output = _run(repo, "cat ../outside/canary.txt; echo pwned > ../outside/written_by_run.txt; echo ok > in_repo.txt")
    assert "canary-content" in output  # reading outside is allowed in workspace-write
    assert not (outside / "written_by_run.txt").exists()
    assert (repo / "in_repo.txt").read_text() == "ok\n"
    assert output.startswith("exit code 0")  # the shell went on after the refused redirect
    assert "Permission denied" in output


def test_the_model_is_told_what_the_sandbox_refused(layout) -> None:
    repo, _ = layout
    output = _run(repo, "echo x > ../outside/x.txt")
    assert output.startswith("exit code 2")
    assert "[sandbox workspace-write: commands may write to the repository (not .git) and $TMPDIR" in output
    assert "../outside/x.txt: Permission denied" in output


def test_git_config_and_hooks_cannot_be_written_by_a_command(layout) -> None:
    repo, _ = layout
    before = (repo / ".git" / "config").read_text()
    output = _run(repo, "echo '[core] fsmonitor = evil' >> .git/config; echo evil > .git/hooks/pre-commit; "
                        "rm -f .git/HEAD; git status --short >/dev/null && echo git-reads-fine")  # fmt: skip
    assert (repo / ".git" / "config").read_text() == before
    assert not (repo / ".git" / "hooks" / "pre-commit").exists() and (repo / ".git" / "HEAD").exists()
    assert "Read-only file system" in output and "git-reads-fine" in output


def test_read_only_mode_refuses_writes_in_the_repository_but_not_in_its_temp_dir(layout) -> None:
    repo, _ = layout
    output = _run(repo, "echo x > in_repo.txt; echo y > $TMPDIR/scratch && cat $TMPDIR/scratch", mode="read-only")
    assert not (repo / "in_repo.txt").exists()
    assert output.rstrip().endswith("y") or "\ny\n" in output


def test_off_behaves_as_before(layout) -> None:
    repo, outside = layout
    output = _run(repo, "echo pwned > ../outside/written.txt", mode="off")
    assert output.startswith("exit code 0") and (outside / "written.txt").read_text() == "pwned\n"


def test_extra_writable_paths(layout) -> None:
    repo, outside = layout
    _run(repo, "echo cache > ../outside/allowed.txt", writable=[str(outside)])
    assert (outside / "allowed.txt").read_text() == "cache\n"


class _Listener:
    """A TCP server on the host's loopback: reachable from outside the sandbox only."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"hello-from-outside\n")
            conn.close()


CONNECT = "python3 -c \"import socket; print(socket.create_connection(('127.0.0.1', {port}), timeout=3).recv(64))\""


def test_the_network_is_off_by_default_and_on_when_configured(layout) -> None:
    repo, _ = layout
    listener = _Listener()
    try:
        refused = _run(repo, CONNECT.format(port=listener.port))
        allowed = _run(repo, CONNECT.format(port=listener.port), network=True)
        by_port = _run(repo, CONNECT.format(port=listener.port), allow_ports=[listener.port])
    finally:
        listener.sock.close()
    assert "hello-from-outside" not in refused and not refused.startswith("exit code 0")
    assert "the network is off" in refused
    assert "hello-from-outside" in allowed and "hello-from-outside" in by_port


def test_a_tests_own_local_server_still_works_without_network(layout) -> None:
    repo, _ = layout
    serve_and_connect = (
        "python3 -c \"import socket; s = socket.create_server(('127.0.0.1', 0)); "
        "c = socket.create_connection(s.getsockname()); print('loopback-ok')\""
    )
    assert "loopback-ok" in _run(repo, serve_and_connect)


def _fixed_case(repo: Path) -> None:
    stats = repo / "stats.py"
    stats.write_text(stats.read_text().replace("len(values) - window)", "len(values) - window + 1)"))
    (repo / "test_tmp.py").write_text(
        "def test_tmp_path_is_writable(tmp_path):\n    (tmp_path / 'f').write_text('x')\n"
    )
    (repo / "conftest.py").write_text(
        "import pathlib\n"
        "def pytest_sessionstart(session):\n"
        "    try:\n"
        "        (pathlib.Path(__file__).parent.parent / 'outside' / 'from_conftest.txt').write_text('x')\n"
        "    except OSError:\n"
        "        pass\n"
    )


@pytest.mark.parametrize("runner", ["auto", "subprocess"])
def test_the_case_study_passes_inside_the_sandbox_warm_and_as_a_subprocess(layout, runner: str) -> None:
    repo, outside = layout
    _fixed_case(repo)
    box = Sandbox.from_settings(SandboxSection())
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    try:
        testcmd.prestart(command, repo, runner=runner, keep_alive_s=0, sandbox=box)
        result = asyncio.run(testcmd.run_tests(command, repo, timeout_s=120))
    finally:
        testcmd.shutdown()
        box.close()
    assert result.runner == ("warm" if runner == "auto" else "subprocess"), result.note
    assert result.passed, result.output
    assert "3 passed" in result.output
    assert not (outside / "from_conftest.txt").exists()  # the repository's conftest ran confined


def test_an_untrusted_repository_cannot_switch_the_sandbox_off(layout, isolated_env) -> None:
    repo, _ = layout
    (repo / ".fastcode.toml").write_text('[sandbox]\nmode = "off"\nnetwork = true\n')
    result = run_cli(["config", "show"], cwd=repo, env=isolated_env)
    assert 'mode = "workspace-write"' in result.stdout
    assert "sandbox.mode" in result.stdout and "not trusted" in result.stdout
    assert "# enforced: workspace-write, network off" in result.stdout


def test_fastcode_sandbox_runs_one_command_as_the_agent_would(layout, isolated_env) -> None:
    repo, outside = layout
    result = run_cli(["sandbox", "--", "echo $TMPDIR; touch ../outside/t"], cwd=repo, env=isolated_env)
    assert result.returncode == 1 and "Permission denied" in result.stderr
    assert result.stderr.startswith("fastcode sandbox: workspace-write, network off (Landlock ABI")
    from fastcode.core.paths import scratch_root

    assert result.stdout.startswith(f"{scratch_root(repo)}/sandbox-") and not (outside / "t").exists()
    off = run_cli(["sandbox", "--sandbox", "off", "--", "touch", "../outside/t"], cwd=repo, env=isolated_env)
    assert off.returncode == 0 and (outside / "t").exists()
    assert run_cli(["sandbox"], cwd=repo, env=isolated_env).returncode == 2


def test_a_run_through_the_cli_is_confined_and_says_so(layout, isolated_env, scripted) -> None:
    repo, outside = layout
    attack = "cat ../outside/canary.txt; echo pwned > ../outside/written_by_run.txt"
    server = scripted({"turns": [{"tool_calls": [{"name": "run", "arguments": {"command": attack}}]},
                                 {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]})  # fmt: skip
    quiet = ["-c", "agent.edit_first='never'", "-c", "context.enabled=false", "-c", "agent.auto_test=false"]
    args = ["exec", "look", "--base-url", server.base_url, "--model", "m", "--json", *quiet]
    result = run_cli(args, cwd=repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["sandbox"].startswith("workspace-write, network off")
    assert not (outside / "written_by_run.txt").exists()
    ran = next(e["output"] for e in events if e["type"] == "tool_finished" and e["name"] == "run")
    assert "canary-content" in ran and "Permission denied" in ran


def test_without_landlock_commands_ask_first_and_it_says_so_once(layout, isolated_env, scripted) -> None:
    repo, outside = layout
    script = {"turns": [{"tool_calls": [{"name": "run", "arguments": {"command": "echo x > ../outside/w"}}]},
                        {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}  # fmt: skip
    quiet = ["-c", "agent.edit_first='never'", "-c", "context.enabled=false", "-c", "agent.auto_test=false"]
    args = ["exec", "look", "--base-url", scripted(script).base_url, "--model", "m", *quiet]
    env = {**isolated_env, "CI": "true"}  # no terminal to ask on: the command is declined
    result = run_cli(args, cwd=repo, env=env, wrapper=[sys.executable, str(HERE / "no_landlock.py")])
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "not enforced" in line]
    assert len(lines) == 1 and "commands ask for approval first" in lines[0]
    assert not (outside / "w").exists()
    args[3] = scripted(script).base_url
    off = run_cli([*args, "--sandbox", "off"], cwd=repo, env=env,
                  wrapper=[sys.executable, str(HERE / "no_landlock.py")])  # fmt: skip
    assert off.returncode == 0 and (outside / "w").exists()
    assert "not enforced" not in off.stderr


def test_the_status_line_names_the_sandbox_in_a_few_words() -> None:
    from fastcode.frontends.tui.status import short_sandbox

    assert short_sandbox("workspace-write, network off (Landlock ABI 7, namespaces)") == "sandboxed"
    assert short_sandbox("read-only, network on (Landlock ABI 7, namespaces)") == "read-only sandbox"
    assert short_sandbox("off (commands run with your rights)") == "unsandboxed"
    assert short_sandbox("workspace-write: not enforced on this system (no Landlock)") == "sandbox not enforced"
    assert short_sandbox("") == ""


def test_a_command_that_failed_for_other_reasons_gets_no_sandbox_note(layout) -> None:
    repo, _ = layout
    output = _run(repo, "ls no-such-file")
    assert output.startswith("exit code 2") and "[sandbox" not in output


def test_multiprocessing_works_inside_the_sandbox(layout) -> None:
    repo, _ = layout
    pool = 'python3 -c "import multiprocessing as m; print(m.Pool(2).map(abs, [-1, -2]))"'
    assert "[1, 2]" in _run(repo, pool)


def test_fastcodes_cache_cannot_be_read_by_a_command(layout, tmp_path, monkeypatch) -> None:
    repo, _ = layout
    cache = tmp_path / "cache"
    (cache / "fastcode" / "testrunners").mkdir(parents=True)
    (cache / "fastcode" / "testrunners" / "k.token").write_text("secret-token")
    (cache / "other.txt").write_text("readable")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    output = _run(repo, f"cat {cache}/fastcode/testrunners/k.token; cat {cache}/other.txt")
    assert "secret-token" not in output and "readable" in output


def test_a_kept_alive_runner_serves_only_requests_with_its_token(layout, tmp_path, monkeypatch) -> None:
    """A sandboxed command could connect to a kept-alive runner's socket and ask for a run without a sandbox: the
    runner refuses any request without the token that only fastcode can read."""
    from fastcode.testrunner.client import WarmRunner
    from fastcode.testrunner.shared import folder

    repo, _ = layout
    cache = tempfile.mkdtemp(prefix="fc-")  # a socket path must stay short
    monkeypatch.setenv("XDG_CACHE_HOME", cache)
    runner = WarmRunner((sys.executable,), repo, keep_alive_s=30)
    try:
        asyncio.run(runner.wait_ready())
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(folder() / f"{runner.key}.sock"))
        reader = sock.makefile("rb")
        assert json.loads(reader.readline())["event"] == "ready"
        for token in (None, "guessed"):
            request = {"id": 1, "args": ["--version"], "script": "", "cwd": str(repo)}
            sock.sendall((json.dumps(request | ({"token": token} if token else {})) + "\n").encode())
            answer = json.loads(reader.readline())
            assert answer["event"] == "refused" and answer["error"] == "not authorised"
        sock.close()
        assert asyncio.run(runner.run(["--version"], timeout_s=60, max_chars=2000)).exit_code == 0
        assert (folder() / f"{runner.key}.token").stat().st_mode & 0o777 == 0o600
    finally:
        pid = runner.pid
        runner.close()
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(cache, ignore_errors=True)


def test_no_capabilities_no_devices_no_host_ipc_no_terminal(layout) -> None:
    repo, _ = layout
    mine = os.readlink("/proc/self/ns/ipc")
    shm = Path("/dev/shm") / f"fastcode-host-{os.getpid()}"
    shm.write_text("host")
    try:
        probe = "grep -E '^Cap(Eff|Bnd)' /proc/self/status; echo x > /dev/kmsg; readlink /proc/self/ns/ipc; "
        inside = Path("/dev/shm") / f"fastcode-inside-{os.getpid()}"
        output = _run(repo, probe + f"cat {shm} || echo no-host-shm; echo in > {inside}; tty")
        assert shm.read_text() == "host" and not inside.exists()
    finally:
        shm.unlink()
    assert "CapEff:\t0000000000000000" in output and "CapBnd:\t0000000000000000" in output
    assert "/dev/kmsg: Permission denied" in output
    assert mine not in output and "no-host-shm" in output
    assert "not a tty" in output


def _runner_cache(monkeypatch) -> str:
    cache = tempfile.mkdtemp(prefix="fc-")  # a socket path must stay short
    monkeypatch.setenv("XDG_CACHE_HOME", cache)
    return cache


def test_code_the_warm_runner_loads_at_start_runs_confined(layout, monkeypatch) -> None:
    """An interpreter or PYTHONPATH inside the repository loads the repository's code into the runner itself (a
    sitecustomize or .pth a command wrote): the runner runs in the sandbox as a whole, not only its children."""
    repo, outside = layout
    cache = _runner_cache(monkeypatch)
    site = repo / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "sys.modules.pop('sitecustomize', None)  # hides from the runner's check for modules of the repository\n"
        "try:\n"
        f"    open({str(outside / 'from_runner.txt')!r}, 'w').write(str(os.getpid()))\n"
        "except OSError:\n"
        "    pass\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    (repo / "stats.py").write_text((repo / "stats.py").read_text().replace("- window)", "- window + 1)"))
    box = Sandbox.from_settings(SandboxSection())
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    try:
        testcmd.prestart(command, repo, keep_alive_s=30, sandbox=box)
        result = asyncio.run(testcmd.run_tests(command, repo, timeout_s=120))
    finally:
        testcmd.shutdown()
        box.close()
        _kill_runners(cache)
    assert result.runner == "warm" and result.passed, result.note + result.output
    assert not (outside / "from_runner.txt").exists()


def _kill_runners(cache: str) -> None:
    for state in Path(cache).glob("fastcode/testrunners/*.log"):
        for line in state.read_text(errors="replace").splitlines():
            if line.startswith("fastcode test runner "):
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(line.split()[3]), signal.SIGKILL)
    shutil.rmtree(cache, ignore_errors=True)


def test_a_run_asked_of_a_confined_runner_without_a_sandbox_stays_confined(layout, monkeypatch) -> None:
    """Even with the runner's token (test code can find it in the runner's memory), a request without a sandbox spec
    runs inside the runner's own sandbox."""
    from fastcode.testrunner.shared import folder

    repo, outside = layout
    cache = _runner_cache(monkeypatch)
    (repo / "escape.py").write_text(f"open({str(outside / 'escaped.txt')!r}, 'w').write('x')\n")
    box = Sandbox.from_settings(SandboxSection())
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider"
    try:
        testcmd.prestart(command, repo, keep_alive_s=30, sandbox=box)
        asyncio.run(testcmd.run_tests(command, repo, timeout_s=120))
        (token_file,) = folder().glob("*.token")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(token_file.with_suffix(".sock")))
        reader = sock.makefile("rb")
        assert json.loads(reader.readline())["event"] == "ready"
        request = {"id": 1, "args": [], "script": str(repo / "escape.py"), "cwd": str(repo),
                   "token": token_file.read_text()}  # fmt: skip
        sock.sendall((json.dumps(request) + "\n").encode())
        events = [json.loads(reader.readline()) for _ in range(2)]
        sock.close()
    finally:
        testcmd.shutdown()
        box.close()
        _kill_runners(cache)
    assert events[-1]["event"] == "done" and events[-1]["status"] != 0
    assert not (outside / "escaped.txt").exists()


def test_fastcodes_cache_is_made_before_it_is_hidden(tmp_path, monkeypatch) -> None:
    """A cache folder that does not exist yet cannot be left out of the read rules: it is made first, and a
    sandbox told to hide a missing folder refuses to start the command."""
    from fastcode.sandbox import confine

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    box = Sandbox.from_settings(SandboxSection())
    spec = box.spec(tmp_path)
    box.close()
    assert (tmp_path / "fresh" / "fastcode").is_dir() and spec["hidden"] == [str(tmp_path / "fresh" / "fastcode")]
    with pytest.raises(OSError, match="does not exist"):
        confine._read_everything_but(-1, 0, [str(tmp_path / "missing")])


def test_fastcodes_own_files_in_the_repository_are_read_only_to_commands(layout) -> None:
    """fastcode writes run files under .fastcode/ outside the sandbox: a symlink a command put there would send those
    writes anywhere. A trusted repository's .fastcode.toml could switch the sandbox off for the next session."""
    repo, outside = layout
    (repo / ".fastcode.toml").write_text("[agent]\nmax_steps = 5\n")
    output = _run(repo, f"mkdir -p .fastcode/runs/x; ln -s {outside}/planted .fastcode/runs/x/diff.patch; "
                        "echo '[sandbox]' >> .fastcode.toml")  # fmt: skip
    assert "Read-only file system" in output
    assert not (repo / ".fastcode" / "runs" / "x").exists() and "sandbox" not in (repo / ".fastcode.toml").read_text()


def test_fastcodes_own_git_never_runs_a_planted_submodules_fsmonitor(tmp_path) -> None:
    """A command may write a submodule's git folder (it is not the repository's .git): its core.fsmonitor must not run
    when fastcode itself runs git (gathering, the repo map, checkpoints) outside the sandbox."""
    from conftest import git

    from fastcode.checkpoint.checkpointer import Checkpointer
    from fastcode.context.gather import _git
    from fastcode.context.repomap import changed_files

    source, repo, marker = tmp_path / "source", tmp_path / "repo", tmp_path / "FSMONITOR_RAN"
    for folder in (source, repo):
        folder.mkdir()
        git(folder, "init", "-q")
        (folder / "a.txt").write_text("a\n")
        git(folder, "add", "-A")
        git(folder, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "i")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(source), "sub")
    git(repo, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "sub")
    git(repo / "sub", "config", "core.fsmonitor", f"touch {marker}; false")
    (repo / "sub" / "a.txt").write_text("changed\n")
    changed_files(repo)
    asyncio.run(_git(repo))
    checkpoint = Checkpointer(repo, repo / ".fastcode" / "runs" / "r1", "r1")
    checkpoint.before_write(None)
    checkpoint.finish()
    assert not marker.exists()


def test_a_revert_does_not_follow_a_folder_swapped_for_a_symlink(tmp_path) -> None:
    from fastcode.agent.edit_first import Attempt

    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / "pkg").mkdir(parents=True)
    outside.mkdir()
    (repo / "pkg" / "calc.py").write_text("original\n")
    attempt = Attempt()
    attempt.before_write((repo / "pkg" / "calc.py").resolve())
    attempt.before_write((repo / "pkg" / "new_mod.py").resolve())
    (repo / "pkg").rename(repo / "moved")  # what a test in the sandbox may do meanwhile
    (repo / "pkg").symlink_to(outside)
    (outside / "new_mod.py").write_text("someone else's file\n")
    attempt.revert(repo)
    assert not (outside / "calc.py").exists() and (outside / "new_mod.py").read_text() == "someone else's file\n"


def test_a_confined_runner_may_write_only_its_own_repositorys_scratch_folder(tmp_path) -> None:
    from fastcode.core.paths import scratch_root

    box = Sandbox.from_settings(SandboxSection(), tmp_path)
    try:
        writable = box.runner_spec(tmp_path)["writable"]
        assert str(scratch_root(tmp_path)) in writable and str(scratch_root()) not in writable
        assert Path(box.tmp()).parent == scratch_root(tmp_path)
    finally:
        box.close()


def test_fastcodes_own_programs_never_come_from_a_folder_in_the_repository(tmp_path, monkeypatch) -> None:
    """An activated .venv inside the repository is on PATH and writable by commands: a `git` or `rg` planted there
    would run outside the sandbox when fastcode runs git or a search."""
    from fastcode.core import paths

    repo = tmp_path / "repo"
    planted = repo / ".venv" / "bin"
    planted.mkdir(parents=True)
    for name in ("git", "rg"):
        (planted / name).write_text("#!/bin/sh\ntouch PLANTED\n")
        (planted / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{planted}{os.pathsep}.{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(paths, "_WORKED_ON", set())
    assert paths.own_program("git") == str(planted / "git")  # before fastcode knows the repository
    paths.worked_on(repo)
    found = paths.own_program("git")
    assert found is not None and not found.startswith(str(repo))
