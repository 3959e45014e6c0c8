"""Issue 13: what a model or a server sends never ends a run with an internal error — each finding of the fuzz
harness (tests/fuzz_harness.py) as a small reproduction."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from raw_endpoint import RawEndpoint, data, sse

from fastcode.core.emitter import Emitter
from fastcode.core.events import ModelCallFinished, ToolCallSpec
from fastcode.models.messages import _json_or_empty
from fastcode.models.wire import TokenCounts, merge_token_counts
from fastcode.toolcalls.recover import recover_calls
from fastcode.tools import ToolContext, ToolError, execute
from fastcode.tools.base import parse_arguments

HUGE = "1" * 5000


def test_a_5000_digit_number_in_arguments_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="cannot be read"):
        parse_arguments("read_file", '{"path": "a.py", "start_line": ' + HUGE + "}")
    assert _json_or_empty('{"summary": ' + HUGE + "}") == "{}"
    assert recover_calls(json.dumps({"name": "finish", "arguments": '{"a": ' + HUGE + "}"}), {"finish"}) is not None


def test_deeply_nested_recovered_arguments_do_not_raise() -> None:
    content = '```json\n{"name": "read_file", "arguments": "' + "[" * 3000 + '"}\n```'
    recover_calls(content, {"read_file"})


@pytest.mark.parametrize(
    ("usage", "extra"),
    [
        ({"prompt_tokens_details": "x"}, {}),
        (None, {"x_groq": {"usage": {"prompt_tokens": "zz", "prompt_tokens_details": 5}}}),
        (None, {"timings": {"cache_n": float("nan"), "predicted_n": [1]}}),
        ({"prompt_tokens": True, "completion_tokens": -3}, {}),
    ],
)
def test_token_counts_of_the_wrong_type_are_ignored(usage, extra) -> None:
    assert merge_token_counts(TokenCounts(7, 1, 2), usage, extra) == TokenCounts(7, 1, 2)


def test_an_event_holding_lone_surrogates_inside_tool_calls_is_written(tmp_path: Path) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    emit = Emitter("r", tmp_path / "trace.jsonl", queue)
    call = ToolCallSpec(id="c", name="read_file", arguments='{"\ud800": 2}')
    event = emit(ModelCallFinished, call_id="1", step=1, route="plan", profile="p", model="m", tool_calls=[call])
    assert "\ufffd" in event.tool_calls[0].arguments
    assert json.loads((tmp_path / "trace.jsonl").read_text())["tool_calls"][0]["name"] == "read_file"


async def test_write_file_leaves_a_fifo_alone(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ToolError, match="not a regular file"):
        await execute("write_file", json.dumps({"path": "fifo", "content": "x"}), ToolContext(tmp_path))


@pytest.mark.parametrize(
    "payload",
    [
        {"choices": [{"index": 0, "delta": "x"}]},
        {"choices": [1]},
        {"choices": [{"index": 0, "delta": {"content": {"x": 1}}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [None]}}]},
    ],
)
def test_stream_chunks_of_the_wrong_shape_are_a_protocol_error(tmp_path, isolated_env, payload) -> None:
    with RawEndpoint([sse(data(payload), b"data: [DONE]\n\n")]) as endpoint:
        args = ["exec", "do it", "--base-url", endpoint.base_url, "--model", "m", "--json",
                "-c", "context.enabled=false", "-c", "agent.warmup='never'"]  # fmt: skip
        result = run_cli(args, cwd=tmp_path, env=isolated_env)
    assert result.returncode == 3, result.stderr
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"type":"error"' in line.replace(" ", "")]
    assert errors and errors[0]["kind"] == "protocol" and "internal" not in result.stdout


def test_odd_but_readable_chunks_still_work(tmp_path, isolated_env) -> None:
    """Arguments sent as an object, a tool-call delta without an index, a `usage: []`: read, not rejected."""
    call = {"id": "c1", "type": "function", "function": {"name": "finish", "arguments": {"summary": "ok"}}}
    payload = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}], "usage": []}
    with RawEndpoint([sse(data(payload), b"data: [DONE]\n\n")]) as endpoint:
        args = ["exec", "do it", "--base-url", endpoint.base_url, "--model", "m", "--json",
                "-c", "context.enabled=false", "-c", "agent.warmup='never'"]  # fmt: skip
        result = run_cli(args, cwd=tmp_path, env=isolated_env)
    assert result.returncode == 0, result.stdout[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["summary"] == "ok"


def test_a_conversation_holding_lone_surrogates_is_sent_cleaned() -> None:
    from fastcode.core.config import ModelProfile
    from fastcode.models.client import ChatClient

    body = ChatClient(ModelProfile()).request_body([{"role": "tool", "content": "x\ud800y"}], [])
    assert body["messages"][0]["content"] == "x\ufffdy"
    json.dumps(body).encode("utf-8")
