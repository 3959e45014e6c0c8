"""A dead or unhappy endpoint: retries where they help, then one plain line and exit code 3."""

from __future__ import annotations

from conftest import run_cli

FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}


def _exec(repo, env, base_url, *extra: str):
    args = ["exec", "do it", "--base-url", base_url, "--model", "scripted-model", "-c", "agent.max_retries=2", *extra]
    return run_cli(args, cwd=repo, env=env)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("fastcode: error:")]


def test_a_500_is_retried_and_the_run_goes_on(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"error": {"status": 500, "message": "overloaded"}}, FINISH]})
    result = _exec(tmp_path, isolated_env, server.base_url)
    assert result.returncode == 0, result.stderr


def test_retries_run_out_exit_3(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"turns": [{"error": {"status": 503, "message": "down for maintenance"}}] * 3})
    result = _exec(tmp_path, isolated_env, server.base_url)
    assert result.returncode == 3
    (line,) = _error_lines(result.stderr)
    assert "answered 503 after 2 retries" in line and "down for maintenance" in line


def test_a_401_says_check_the_key(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"require_api_key": "right", "turns": [FINISH]})
    result = _exec(tmp_path, {**isolated_env, "OPENAI_API_KEY": "wrong"}, server.base_url)
    assert result.returncode == 3
    (line,) = _error_lines(result.stderr)
    assert "rejected the API key (401)" in line and "$OPENAI_API_KEY" in line


def test_an_unknown_model_is_named(tmp_path, isolated_env, scripted) -> None:
    server = scripted({"strict_models": True, "turns": [FINISH]})
    result = _exec(tmp_path, isolated_env, server.base_url.replace("scripted-model", ""), "--model", "gpt-nope")
    assert result.returncode == 3
    (line,) = _error_lines(result.stderr)
    assert "model 'gpt-nope' not found" in line


def test_unreachable_endpoint_in_json_mode_still_ends_with_a_result(tmp_path, isolated_env) -> None:
    result = _exec(tmp_path, isolated_env, "http://127.0.0.1:9/v1", "--json")
    assert result.returncode == 3
    assert '"type":"error"' in result.stdout.replace(" ", "") and '"type": "result"' in result.stdout
