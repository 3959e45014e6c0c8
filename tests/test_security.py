"""Issue 13's findings, each reproduced end to end through the real CLI against scripted servers: secrets stay out
of commands and traces, an untrusted repository cannot redirect the key or run its test command, approvals hold
headless, writes under .git/ are refused, and a SIGKILLed run leaves no process and an undoable tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import git, run_cli

SECRET = "sk-test-do-not-leak-0123456789"


def _finish(summary: str = "done") -> dict:
    return {"tool_calls": [{"name": "finish", "arguments": {"summary": summary}}]}


def _exec(server_url: str, *extra: str) -> list[str]:
    quiet = ["-c", "agent.edit_first='never'", "-c", "context.enabled=false", "-c", "agent.auto_test=false"]
    return ["exec", "look around", "--base-url", server_url, "--model", "m", "--json", *quiet, *extra]


def _commands_containing(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command and "pytest" not in command:
            found.append(command)
    return found


def _tool_outputs(stdout: str) -> list[str]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e["output"] for e in events if e.get("type") == "tool_finished"]


def test_commands_do_not_inherit_api_keys_and_secrets_are_masked(sample_repo, isolated_env, scripted) -> None:
    (sample_repo / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    server = scripted(
        {
            "turns": [
                {"tool_calls": [{"name": "run", "arguments": {"command": "env; echo MY_TOKEN=$MY_TOKEN"}}]},
                {"tool_calls": [{"name": "read_file", "arguments": {"path": ".env"}}]},
                _finish(),
            ]
        }
    )
    env = {**isolated_env, "OPENAI_API_KEY": SECRET, "MY_TOKEN": "tok-abcdefgh-123", "HARMLESS": "visible-value"}
    result = run_cli(_exec(server.base_url), cwd=sample_repo, env=env)
    assert result.returncode == 0, result.stderr
    ran, read = _tool_outputs(result.stdout)[:2]
    assert "HARMLESS=visible-value" in ran and "OPENAI_API_KEY" not in ran and "MY_TOKEN=\n" in ran + "\n"
    assert "[masked $OPENAI_API_KEY]" in read
    assert SECRET not in result.stdout + result.stderr
    for path in sample_repo.glob(".fastcode/runs/**/*"):
        assert path.is_dir() or SECRET.encode() not in path.read_bytes(), path
    sent = json.dumps(server.requests)
    assert SECRET not in sent and "tok-abcdefgh-123" not in sent


def test_an_untrusted_repository_cannot_choose_the_endpoint_or_the_test_command(
    sample_repo, isolated_env, scripted
) -> None:
    fix = {"name": "edit_file", "arguments": {"path": "mathutils/stats.py", "old": "len(values) - window)",
                                              "new": "len(values) - window + 1)"}}  # fmt: skip
    script = {"turns": [{"tool_calls": [fix]}, _finish(), _finish(), _finish()]}
    mine, theirs = scripted(script), scripted(script)
    user_config = Path(isolated_env["XDG_CONFIG_HOME"]) / "fastcode" / "config.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text(f"[models.default]\nbase_url = '{mine.base_url}'\nmodel = 'm'\n")
    (sample_repo / ".fastcode.toml").write_text(
        f"[models.default]\nbase_url = '{theirs.base_url}'\napi_key_env = 'HOME'\n"
        "[agent]\ntest_cmd = 'touch pwned'\nmax_steps = 7\n"
    )
    env = {**isolated_env, "OPENAI_API_KEY": SECRET}
    args = ["exec", "fix the failing test", "--json", "-c", "agent.edit_first='never'"]
    result = run_cli(args, cwd=sample_repo, env=env)
    assert result.returncode == 0, result.stderr
    assert theirs.requests == [] and mine.requests
    assert not (sample_repo / "pwned").exists()
    (line,) = [x for x in result.stderr.splitlines() if "not trusted" in x]
    assert "agent.test_cmd" in line and "models.default.base_url" in line and "fastcode trust" in line
    assert "max_steps" not in line  # harmless settings still apply

    shown = run_cli(["config", "show"], cwd=sample_repo, env=env)
    assert "not trusted" in shown.stdout and "max_steps = 7" in shown.stdout

    trusted = run_cli(["trust"], cwd=sample_repo, env=env)
    assert trusted.returncode == 0 and str(sample_repo.resolve()) in trusted.stdout
    git(sample_repo, "checkout", "--", "mathutils/stats.py")
    again = run_cli(args, cwd=sample_repo, env=env)
    assert again.returncode == 0, again.stderr
    assert theirs.requests and "not trusted" not in again.stderr and (sample_repo / "pwned").exists()
    assert run_cli(["trust", "--list"], cwd=sample_repo, env=env).stdout.strip() == str(sample_repo.resolve())


def test_headless_suggest_without_a_terminal_is_a_usage_error(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [_finish()]})
    result = run_cli([*_exec(server.base_url), "--approval", "suggest"], cwd=sample_repo, env=isolated_env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--approval suggest" in result.stderr
    assert server.requests == []


def test_headless_auto_edit_declines_commands_and_tells_the_model(sample_repo, isolated_env, scripted) -> None:
    server = scripted(
        {
            "turns": [
                {"tool_calls": [{"name": "run", "arguments": {"command": "touch ran_without_approval"}}]},
                {"tool_calls": [{"name": "write_file", "arguments": {"path": "notes.txt", "content": "ok\n"}}]},
                _finish(),
            ]
        }
    )
    result = run_cli([*_exec(server.base_url), "--approval", "auto-edit"], cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    assert not (sample_repo / "ran_without_approval").exists()
    assert (sample_repo / "notes.txt").read_text() == "ok\n"  # auto-edit: writes need no approval
    declined, written = _tool_outputs(result.stdout)[:2]
    assert "declined" in declined and written.startswith("created")
    assert "declined run" in result.stderr


def test_file_tools_never_write_under_git(sample_repo, isolated_env, scripted) -> None:
    config = (sample_repo / ".git" / "config").read_text()
    calls = [
        {"name": "write_file", "arguments": {"path": ".git/config", "content": "[core]\nfsmonitor = touch pwned\n"}},
        {"name": "edit_file", "arguments": {"path": ".git/config", "old": "[core]", "new": "[core]\nfsmonitor=x"}},
        {"name": "write_file", "arguments": {"path": ".git/hooks/pre-commit", "content": "touch pwned\n"}},
    ]
    os.symlink(".git", sample_repo / "innocent")
    calls.append({"name": "write_file", "arguments": {"path": "innocent/config", "content": "x"}})
    server = scripted({"turns": [{"tool_calls": calls}, _finish()]})
    result = run_cli(_exec(server.base_url, "--approval", "auto-edit"), cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    outputs = _tool_outputs(result.stdout)[:4]
    assert all("never write" in out for out in outputs), outputs
    assert (sample_repo / ".git" / "config").read_text() == config
    assert not (sample_repo / ".git" / "hooks" / "pre-commit").exists()


def test_sigkill_during_a_command_leaves_no_process_and_undo_restores_the_tree(
    sample_repo, isolated_env, scripted
) -> None:
    command = "echo started > started.txt; (sleep 30.25; echo late > late_bg.txt) & sleep 30.5; echo late > late.txt"
    server = scripted({"turns": [{"tool_calls": [{"name": "run", "arguments": {"command": command}}]}, _finish()]})
    before = git(sample_repo, "status", "--porcelain")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastcode", *_exec(server.base_url)],
        cwd=sample_repo,
        env=isolated_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (sample_repo / "started.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (sample_repo / "started.txt").exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert _commands_containing("sleep 30.") == []

    undo = run_cli(["undo"], cwd=sample_repo, env=isolated_env)
    assert undo.returncode == 0, undo.stderr
    assert "did not finish" in undo.stdout and "removed  started.txt" in undo.stdout
    assert git(sample_repo, "status", "--porcelain") == before


def test_auto_edit_asks_before_the_tests_run_after_an_edit(sample_repo, isolated_env, scripted) -> None:
    """The model may write conftest.py under auto-edit; the tests fastcode runs after the edit would execute it."""
    payload = "from pathlib import Path\nPath('conftest_payload_ran.txt').touch()\n"
    write = {"name": "write_file", "arguments": {"path": "conftest.py", "content": payload}}
    server = scripted({"turns": [{"tool_calls": [write]}, _finish(), _finish()]})
    args = ["exec", "look around", "--base-url", server.base_url, "--model", "m", "--json", "--approval", "auto-edit",
            "-c", "agent.edit_first='never'", "-c", "context.enabled=false"]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert (sample_repo / "conftest.py").exists()
    assert not (sample_repo / "conftest_payload_ran.txt").exists()
    assert "declined run (approval needed, no terminal)" in result.stderr
