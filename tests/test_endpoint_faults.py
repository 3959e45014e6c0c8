"""Issue 16's endpoint faults through the real CLI: an answer that is not an OpenAI chat completion stream, an error
inside the stream, a hung or silent stream, Retry-After, another service on the port. Each ends with exit 3 and one
line (or a clean run), never a traceback or a run that burns its steps on empty answers."""

from __future__ import annotations

import json
import time

from conftest import run_cli
from raw_endpoint import FINISH_STREAM, BannerServer, RawEndpoint, chunk, data, hang, http, progress, sse

QUICK = ["-c", "agent.max_retries=2", "-c", "context.enabled=false", "-c", "agent.warmup='never'"]


def _exec(repo, env, base_url: str, *extra: str):
    args = ["exec", "do it", "--base-url", base_url, "--model", "m", *QUICK, *extra]
    started = time.monotonic()
    result = run_cli(args, cwd=repo, env=env)
    return result, time.monotonic() - started


def _one_error(result) -> str:
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("fastcode: error:")]
    return line


def test_garbage_in_an_event_stream_is_a_protocol_error(tmp_path, isolated_env) -> None:
    with RawEndpoint([sse(b"data: {this is not json\n\n")]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url)
    assert result.returncode == 3
    assert "did not speak the OpenAI streaming protocol" in _one_error(result)


def test_a_chunk_that_is_a_json_list_is_a_protocol_error(tmp_path, isolated_env) -> None:
    with RawEndpoint([sse(data([1, 2, 3]), b"data: [DONE]\n\n")]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url)
    assert result.returncode == 3
    assert "OpenAI streaming protocol" in _one_error(result)


def test_an_error_event_mid_stream_is_reported_with_the_servers_message(tmp_path, isolated_env) -> None:
    stream = sse(chunk("Hel"), data({"error": {"message": "the model crashed", "type": "server_error"}}))
    with RawEndpoint([stream]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url)
    assert result.returncode == 3
    assert "the model crashed" in _one_error(result)


def test_an_html_page_with_status_200_fails_on_the_first_call(tmp_path, isolated_env) -> None:
    page = http(200, "text/html; charset=utf-8", b"<html><body>Please log in to the Wi-Fi</body></html>")
    with RawEndpoint([page]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url)
        assert endpoint.requests == 1
    assert result.returncode == 3
    line = _one_error(result)
    assert "text/html" in line and "log in" in line


def test_a_plain_json_completion_is_accepted(tmp_path, isolated_env) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "finish", "arguments": '{"summary": "all good"}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}  # fmt: skip
    with RawEndpoint([http(200, "application/json", json.dumps(body).encode())]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url, "--json")
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.splitlines()[-1])
    assert final["status"] == "finished" and final["summary"] == "all good"


def test_another_service_on_the_port_is_not_an_endpoint(tmp_path, isolated_env) -> None:
    with BannerServer() as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url, "-c", "agent.warmup='always'")
    assert result.returncode == 3
    assert "does not look like an OpenAI-compatible endpoint" in _one_error(result)


def test_a_stream_kept_alive_with_comments_but_no_token_times_out(tmp_path, isolated_env) -> None:
    with RawEndpoint([sse(forever=b": keep-alive\n\n")]) as endpoint:
        result, seconds = _exec(
            tmp_path, isolated_env, endpoint.base_url, "-c", "models.default.first_token_timeout_s=2"
        )
        assert endpoint.requests == 1  # a hung endpoint is not retried
    assert result.returncode == 3 and seconds < 30
    line = _one_error(result)
    assert "sent no token" in line and "models.default.first_token_timeout_s" in line


def test_a_stream_that_stops_sending_tokens_hits_the_idle_timeout(tmp_path, isolated_env) -> None:
    with RawEndpoint([sse(chunk("I will "), forever=b": still here\n\n")]) as endpoint:
        result, seconds = _exec(tmp_path, isolated_env, endpoint.base_url, "-c", "models.default.idle_timeout_s=1")
    assert result.returncode == 3 and seconds < 30
    assert "models.default.idle_timeout_s" in _one_error(result)


def test_a_hung_endpoint_fails_by_its_first_token_deadline(tmp_path, isolated_env) -> None:
    with RawEndpoint([hang()]) as endpoint:
        result, seconds = _exec(
            tmp_path, isolated_env, endpoint.base_url, "-c", "models.default.first_token_timeout_s=1.5"
        )
    assert result.returncode == 3 and seconds < 30
    assert "first_token_timeout_s" in _one_error(result)


def test_retry_after_is_honoured_and_shown(tmp_path, isolated_env) -> None:
    busy = http(429, "application/json", b'{"error": {"message": "slow down"}}', {"Retry-After": "1"})
    with RawEndpoint([busy, FINISH_STREAM]) as endpoint:
        result, seconds = _exec(tmp_path, isolated_env, endpoint.base_url)
    assert result.returncode == 0, result.stderr
    assert seconds >= 1.0
    assert "retry 1 in 1.0 s (HTTP 429, Retry-After 1 s)" in result.stderr


def test_a_retry_after_beyond_the_cap_fails_at_once(tmp_path, isolated_env) -> None:
    busy = http(429, "application/json", b'{"error": {"message": "quota"}}', {"Retry-After": "3600"})
    with RawEndpoint([busy]) as endpoint:
        result, seconds = _exec(tmp_path, isolated_env, endpoint.base_url)
        assert endpoint.requests == 1
    assert result.returncode == 3 and seconds < 30
    line = _one_error(result)
    assert "3600" in line and "retry_after_max_s" in line


def test_a_warm_up_answered_with_an_endless_trickle_ends_by_its_deadline(tmp_path, isolated_env) -> None:
    with RawEndpoint([sse(forever=b": keep-alive\n\n")]) as endpoint:
        args = ["exec", "do it", "--base-url", endpoint.base_url, "--model", "m", "-c", "agent.max_retries=0",
                "-c", "context.enabled=false", "-c", "agent.warmup='always'",
                "-c", "models.default.first_token_timeout_s=2"]  # fmt: skip
        started = time.monotonic()
        result = run_cli(args, cwd=tmp_path, env=isolated_env)
    assert result.returncode == 3 and time.monotonic() - started < 30
    assert "first_token_timeout_s" in _one_error(result)


def test_a_slow_endpoint_whose_warm_up_timed_out_gets_its_prefill_time(tmp_path, isolated_env) -> None:
    """A CPU that prefills slowly: the warm-up times out, and the first call may then wait longer than
    first_token_timeout_s alone for its first token (the prefill at the rate the timeout implies)."""
    slow = sse(4.5, chunk(tool=("finish", '{"summary": "slow but fine"}'), finish="tool_calls"), b"data: [DONE]\n\n")
    with RawEndpoint([hang(4.0), slow]) as endpoint:
        args = ["exec", "do it", "--base-url", endpoint.base_url, "--model", "m", "-c", "agent.max_retries=0",
                "-c", "context.enabled=false", "-c", "agent.warmup='always'",
                "-c", "models.default.first_token_timeout_s=3"]  # fmt: skip
        result = run_cli(args, cwd=tmp_path, env=isolated_env)
    assert result.returncode == 0, result.stderr


def test_a_hung_local_endpoint_fails_once_its_warm_up_times_out(tmp_path, isolated_env) -> None:
    """Nothing answers, not even GET /models: the run ends after the warm-up's timeout and a 3 s probe, without
    sending the first call (which would wait its whole first-token deadline plus a prefill allowance)."""
    with RawEndpoint([hang()], others=hang()) as endpoint:
        args = ["exec", "do it", "--base-url", endpoint.base_url, "--model", "m", "-c", "context.enabled=false",
                "-c", "agent.warmup='always'", "-c", "models.default.first_token_timeout_s=3"]  # fmt: skip
        started = time.monotonic()
        result = run_cli(args, cwd=tmp_path, env=isolated_env)
        assert endpoint.requests == 1  # the warm-up only
    assert result.returncode == 3 and time.monotonic() - started < 20
    line = _one_error(result)
    assert "looks hung" in line and "GET /models" in line


def test_a_server_reporting_prompt_progress_is_waited_for(tmp_path, isolated_env) -> None:
    """llama.cpp reports its progress on a long prompt: each report restarts the first-token deadline, so a prompt
    whose prefill takes longer than first_token_timeout_s still gets its answer."""
    reports = [event for n in range(5) for event in (progress(n * 800), 1.0)]
    slow = sse(*reports, chunk(tool=("finish", '{"summary": "prefilled"}'), finish="tool_calls"), b"data: [DONE]\n\n")
    with RawEndpoint([slow]) as endpoint:
        result, seconds = _exec(tmp_path, isolated_env, endpoint.base_url, "-c",
                                "models.default.first_token_timeout_s=2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert seconds >= 5


def test_a_server_whose_prompt_progress_stops_hits_the_first_token_deadline(tmp_path, isolated_env) -> None:
    stuck = sse(progress(0), 1.0, progress(800), 600.0)
    with RawEndpoint([stuck]) as endpoint:
        result, seconds = _exec(tmp_path, isolated_env, endpoint.base_url, "-c",
                                "models.default.first_token_timeout_s=2")  # fmt: skip
        assert endpoint.requests == 1
    assert result.returncode == 3 and seconds < 30
    assert "first_token_timeout_s" in _one_error(result)


def test_a_stream_labelled_as_json_or_text_is_still_read(tmp_path, isolated_env) -> None:
    body = chunk(tool=("finish", '{"summary": "read anyway"}'), finish="tool_calls") + b"data: [DONE]\n\n"
    for ctype in ("application/json", "text/plain"):
        with RawEndpoint([http(200, ctype, body)]) as endpoint:
            result, _ = _exec(tmp_path, isolated_env, endpoint.base_url, "--json")
        assert result.returncode == 0, (ctype, result.stderr)
        assert json.loads(result.stdout.splitlines()[-1])["summary"] == "read anyway"


def test_plain_text_that_is_not_a_stream_is_a_protocol_error(tmp_path, isolated_env) -> None:
    with RawEndpoint([http(200, "text/plain", b"Service temporarily unavailable\n")]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url)
        assert endpoint.requests == 1
    assert result.returncode == 3
    assert "text/plain" in _one_error(result)


def test_an_event_stream_without_a_single_event_is_a_protocol_error(tmp_path, isolated_env) -> None:
    with RawEndpoint([sse(b": nothing to see\n\n")]) as endpoint:
        result, _ = _exec(tmp_path, isolated_env, endpoint.base_url)
    assert result.returncode == 3
    assert "no events" in _one_error(result)
