"""The spine, end to end: the real CLI, the real OpenAI client, the scripted server over sockets, a real git repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import git, load_script, run_cli

from fastcode.core.trace import build, read_trace


def _runs(repo: Path) -> list[Path]:
    return sorted((repo / ".fastcode" / "runs").iterdir())


def _pytest_passes(repo: Path, env: dict[str, str]) -> bool:
    result = subprocess.run(["python", "-m", "pytest", "-q"], cwd=repo, env=env, capture_output=True, text=True)
    return result.returncode == 0


def test_exec_fixes_the_failing_test_and_undo_puts_it_back(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))
    original = (sample_repo / "mathutils/stats.py").read_bytes()
    assert not _pytest_passes(sample_repo, isolated_env)

    # The recorded trajectory explores first: no edit-first (the scripted model does not honour its schema).
    args = ["exec", "fix the failing test", "--base-url", server.base_url, "--model", "scripted-model", "--json",
            "-c", "agent.edit_first='never'"]  # fmt: skip
    result = run_cli(args, cwd=sample_repo, env=isolated_env)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    final = lines[-1]
    assert final["type"] == "result" and final["status"] == "finished"
    assert "off by one" in final["summary"]
    assert "+    return [sum(values[i : i + window]) for i in range(len(values) - window + 1)]" in final["diff"]
    assert _pytest_passes(sample_repo, isolated_env)

    # HEAD, the index and the user's branch are untouched; .fastcode/ stays out of git status.
    assert git(sample_repo, "status", "--porcelain") == " M mathutils/stats.py\n"
    assert ".fastcode/" in (sample_repo / ".git/info/exclude").read_text()

    # The trace holds TTFT and cached tokens for every model call.
    (run,) = _runs(sample_repo)
    events = read_trace(run / "trace.jsonl")
    calls = [e for e in events if e.type == "model_call_finished" and not e.warmup]
    assert len(calls) == final["model_calls"] >= 3
    assert all(c.ttft_ms is not None and c.ttft_ms >= 0 for c in calls)
    assert all(c.cached_tokens > 0 for c in calls[1:])
    # The warm-up (sent while context was gathered) already cached the system prompt and tools for call 1.
    assert calls[0].cached_tokens > 0
    assert not any(c.prefix_break for c in calls)
    assert (run / "diff.patch").read_text() == final["diff"]
    assert build(events).totals().model_calls == len(calls)

    # The API key never reaches the trace.
    assert "sk-" not in (run / "trace.jsonl").read_text()

    undo = run_cli(["undo"], cwd=sample_repo, env=isolated_env)
    assert undo.returncode == 0, undo.stderr
    assert (sample_repo / "mathutils/stats.py").read_bytes() == original
    assert git(sample_repo, "status", "--porcelain") == ""


def test_trace_show_prints_the_per_step_table(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))
    args = ["exec", "fix it", "--base-url", server.base_url, "--model", "m", "-c", "agent.edit_first='never'"]
    run_cli(args, cwd=sample_repo, env=isolated_env)
    shown = run_cli(["trace", "show"], cwd=sample_repo, env=isolated_env)
    assert shown.returncode == 0, shown.stderr
    assert "ttft ms" in shown.stdout and "read_file" in shown.stdout and "edit_file" in shown.stdout
    assert "model calls" in shown.stdout and "cached" in shown.stdout


def test_human_mode_prints_one_line_per_step_and_the_diff(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))
    args = [
        "exec",
        "fix the failing test",
        "--base-url",
        server.base_url,
        "--model",
        "m",
        "-c",
        "agent.edit_first='never'",
    ]
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    step_lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert len(step_lines) == 4
    assert "ttft" in step_lines[0] and "cached" in step_lines[1] and "read_file" in step_lines[0]
    assert "moving_sum skipped the last window" in result.stdout
    assert "diff --git" in result.stdout


def test_unreachable_endpoint_exits_3_with_one_line(sample_repo, isolated_env) -> None:
    args = ["exec", "fix it", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "-c", "agent.max_retries=1"]
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("fastcode: error:")]
    assert len(errors) == 1 and "cannot reach endpoint http://127.0.0.1:9/v1" in errors[0]


def test_max_steps_exits_1(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))
    args = ["exec", "fix it", "--base-url", server.base_url, "--model", "m", "--max-steps", "1", "--json"]
    args += ["-c", "agent.edit_first='never'"]  # the scripted model reads first: a read-edit-finish trajectory
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 1
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "max_steps"


def test_outside_git_the_run_keeps_copies_and_undo_uses_them(tmp_path, isolated_env, scripted) -> None:
    import shutil

    from conftest import DATA

    repo = tmp_path / "plain"
    shutil.copytree(DATA / "sample_repo", repo)
    original = (repo / "mathutils/stats.py").read_bytes()
    server = scripted(load_script("sample_fix.json"))
    result = run_cli(["exec", "fix it", "--base-url", server.base_url, "--model", "m", "--repo", str(repo)],
                     cwd=repo, env=isolated_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (repo / "mathutils/stats.py").read_bytes() != original
    undo = run_cli(["undo", "--repo", str(repo)], cwd=repo, env=isolated_env)
    assert undo.returncode == 0, undo.stderr
    assert (repo / "mathutils/stats.py").read_bytes() == original


def test_undo_refuses_when_the_user_edited_since(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))
    run_cli(["exec", "fix it", "--base-url", server.base_url, "--model", "m"], cwd=sample_repo, env=isolated_env)
    target = sample_repo / "mathutils/stats.py"
    target.write_text(target.read_text() + "# my own edit\n")
    undo = run_cli(["undo"], cwd=sample_repo, env=isolated_env)
    assert undo.returncode == 1 and "mathutils/stats.py" in undo.stderr
    assert "# my own edit" in target.read_text()
    forced = run_cli(["undo", "--force"], cwd=sample_repo, env=isolated_env)
    assert forced.returncode == 0 and "# my own edit" not in target.read_text()


def test_ctrl_c_exits_130_and_the_trace_says_interrupted(sample_repo, isolated_env, scripted) -> None:
    import signal
    import sys
    import time

    from fastcode.testing.scripted_server import Latency

    server = scripted({"turns": [{"content": "thinking"}]}, latency=Latency(ttft_ms=20_000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastcode", "exec", "fix it", "--base-url", server.base_url, "--model", "m", "--json"],
        cwd=sample_repo, env=isolated_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not [r for r in server.requests if r.get("max_tokens") != 1] and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert json.loads(out.splitlines()[-1])["status"] == "interrupted"
    (run,) = _runs(sample_repo)
    assert read_trace(run / "trace.jsonl")[-1].status == "interrupted"


def test_plain_fastcode_task_runs_headless_when_stdout_is_not_a_tty(sample_repo, isolated_env, scripted) -> None:
    server = scripted(load_script("sample_fix.json"))
    result = run_cli(["fix the failing test", "--base-url", server.base_url, "--model", "m", "--json"],
                     cwd=sample_repo, env=isolated_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "finished"
