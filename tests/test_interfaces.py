"""Issue 14: interfaces users know from other agents — the `result` object, the task on stdin, continuing a
conversation, one-word typos, `config show` that round-trips, and a scripted server a demo can run twice. Everything
through the real CLI against the scripted server over sockets."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import git, run_cli

from fastcode.testing.scripted_server import ScriptedServer

QUIET = ["-c", "agent.edit_first='never'", "-c", "context.enabled=false", "-c", "agent.auto_test=false"]
FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _exec(url: str, *extra: str, task: str = "look around") -> list[str]:
    return ["exec", task, "--base-url", url, "--model", "m", "--json", *QUIET, *extra]


def test_the_result_object_carries_usage_steps_ids_and_no_error(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]}, FINISH]})
    result = run_cli(_exec(server.base_url), cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0, result.stderr
    events = _events(result.stdout)
    final = events[-1]
    assert final["type"] == "result" and final["status"] == "finished"
    assert final["is_error"] is False and final["error"] is None
    assert final["steps"] == 2 and final["model_calls"] == 2
    calls = [e for e in events if e["type"] == "model_call_finished"]
    assert final["usage"]["prompt_tokens"] == sum(c["prompt_tokens"] for c in calls) > 0
    assert final["usage"]["completion_tokens"] == sum(c["completion_tokens"] for c in calls) > 0
    assert set(final["usage"]) == {"prompt_tokens", "cached_tokens", "completion_tokens"}
    assert final["session_id"] == final["run_id"] == events[0]["run_id"]
    assert final["duration_ms"] == round(final["wall_s"] * 1000)


def test_an_endpoint_error_is_in_the_result(sample_repo, isolated_env) -> None:
    args = _exec("http://127.0.0.1:9/v1", "-c", "agent.max_retries=0", "-c", "agent.warmup='never'")
    result = run_cli(args, cwd=sample_repo, env=isolated_env)
    assert result.returncode == 3
    final = _events(result.stdout)[-1]
    assert final["is_error"] is True and final["status"] == "error"
    assert final["error"]["kind"] and "127.0.0.1:9" in final["error"]["message"]


def test_a_timeout_reports_the_steps_it_took(sample_repo, isolated_env, scripted) -> None:
    read = {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]}
    server = scripted({"turns": [read] * 20, "latency": {"ttft_ms": 600}})
    result = run_cli([*_exec(server.base_url), "--timeout", "2.5"], cwd=sample_repo, env=isolated_env)
    events = _events(result.stdout)
    final = events[-1]
    started = [e for e in events if e["type"] == "step_started"]
    assert final["status"] == "timeout" and result.returncode == 1
    assert final["steps"] == len(started) >= 2


def _piped(args: list[str], stdin: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcode", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_task_comes_from_stdin(sample_repo, isolated_env, scripted) -> None:
    for task_arg in ([], ["-"]):
        server = scripted({"turns": [FINISH]})
        args = ["exec", *task_arg, "--base-url", server.base_url, "--model", "m", "--json", *QUIET]
        result = _piped(args, "explain the sum function\n", sample_repo, isolated_env)
        assert result.returncode == 0, result.stderr
        assert _events(result.stdout)[0]["task"] == "explain the sum function"
    empty = _piped(["exec", "--model", "m"], "", sample_repo, isolated_env)
    assert empty.returncode == 2 and "no task given" in empty.stderr


def test_help_and_one_word_typos_are_usage_errors(sample_repo, isolated_env) -> None:
    for word, expected in (("help", "usage: fastcode"), ("xec", "did you mean `fastcode exec`"),
                           ("refactor", "fastcode exec refactor")):  # fmt: skip
        result = run_cli([word], cwd=sample_repo, env=isolated_env, timeout=30)
        assert result.returncode == 2 and expected in result.stderr
        assert not (sample_repo / ".fastcode" / "runs").exists()


def test_a_one_word_task_runs_with_exec(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH]})
    result = run_cli(_exec(server.base_url, task="refactor"), cwd=sample_repo, env=isolated_env)
    assert result.returncode == 0 and _events(result.stdout)[0]["task"] == "refactor"


def test_config_show_is_toml_that_reads_back_unchanged(tmp_path, isolated_env) -> None:
    first = tmp_path / "first"
    first.mkdir()
    git(first, "init", "-q")
    shown = run_cli(["config", "show", "-c", "agent.max_steps=7", "-c", "models.default.base_url='http://h:1/v1'"],
                    cwd=first, env=isolated_env)  # fmt: skip
    assert shown.returncode == 0
    parsed = tomllib.loads(shown.stdout)
    assert parsed["agent"]["max_steps"] == 7 and parsed["models"]["default"] == {"base_url": "http://h:1/v1"}
    assert "timeout_s" not in parsed["agent"]  # defaults stay comments: read back, they change nothing
    assert shown.stdout.startswith("# a run would use: gpt-4.1-mini @ http://h:1/v1")
    second = tmp_path / "second"
    second.mkdir()
    git(second, "init", "-q")
    (second / ".fastcode.toml").write_text(shown.stdout)
    again = run_cli(["config", "show"], cwd=second, env={**isolated_env, "FASTCODE_TRUST": "1"})
    assert again.returncode == 0, again.stderr
    assert tomllib.loads(again.stdout) == parsed


def test_the_scripted_server_replays_for_each_new_conversation(sample_repo, isolated_env) -> None:
    script = {"turns": [FINISH]}
    with ScriptedServer(script, replay=True) as server:
        for _ in range(3):
            assert run_cli(_exec(server.base_url), cwd=sample_repo, env=isolated_env).returncode == 0
    with ScriptedServer(script) as server:
        assert run_cli(_exec(server.base_url), cwd=sample_repo, env=isolated_env).returncode == 0
        assert run_cli(_exec(server.base_url), cwd=sample_repo, env=isolated_env).returncode == 3


def test_continue_and_resume_carry_the_conversation_on(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH, FINISH, FINISH]})
    first = run_cli(_exec(server.base_url, task="first task"), cwd=sample_repo, env=isolated_env)
    first_id = _events(first.stdout)[-1]["run_id"]
    sent_first = server.requests[-1]["messages"]
    again = run_cli([*_exec(server.base_url, task="second task"), "--continue"], cwd=sample_repo, env=isolated_env)
    assert again.returncode == 0, again.stderr
    events = _events(again.stdout)
    assert events[0]["session_id"] == first_id and events[-1]["session_id"] == first_id
    sent = server.requests[-1]["messages"]
    assert sent[: len(sent_first)] == sent_first  # the same prefix: the server's cache still holds it
    assert "second task" in json.dumps(sent[-1])
    # a prefix of the id is enough when no other run shares it (ids are start times: the runs above may share a second)
    others = [p.name for p in (sample_repo / ".fastcode" / "runs").iterdir() if p.name != first_id]
    unique = (first_id[:n] for n in range(8, len(first_id) + 1) if not any(o.startswith(first_id[:n]) for o in others))
    prefix = next(unique)
    third = run_cli([*_exec(server.base_url, task="third"), "--resume", prefix], cwd=sample_repo,
                    env=isolated_env)  # fmt: skip
    assert third.returncode == 0 and _events(third.stdout)[0]["session_id"] == first_id
    bogus = run_cli([*_exec(server.base_url), "--resume", "nope"], cwd=sample_repo, env=isolated_env)
    assert bogus.returncode == 2 and "no run 'nope'" in bogus.stderr


def test_an_ambiguous_run_prefix_says_so(sample_repo, isolated_env, scripted) -> None:
    server = scripted({"turns": [FINISH, FINISH]})
    for _ in range(2):
        run_cli(_exec(server.base_url), cwd=sample_repo, env=isolated_env)
    result = run_cli(["trace", "show", "2"], cwd=sample_repo, env=isolated_env)
    assert result.returncode == 2 and "2 runs start with '2'" in result.stderr
    both = run_cli([*_exec(server.base_url), "--continue", "--resume", "2"], cwd=sample_repo, env=isolated_env)
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_reader_that_goes_away_ends_the_run_quietly(sample_repo, isolated_env, scripted) -> None:
    read = {"tool_calls": [{"name": "read_file", "arguments": {"path": "README.md"}}]}
    server = scripted({"turns": [read] * 10 + [FINISH], "latency": {"ttft_ms": 300}})
    proc = subprocess.Popen([sys.executable, "-m", "fastcode", *_exec(server.base_url)], cwd=sample_repo,
                            env=isolated_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=60) == 141
    assert b"Traceback" not in proc.stderr.read()
