"""The scripted server over real sockets: the real openai client and raw http.client, no mocks."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fastcode.testing import Latency, ScriptedServer

SYSTEM = {"role": "system", "content": "You are a fast coding agent. " * 20}
TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]


def client(server: ScriptedServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)


def raw(
    server: ScriptedServer, method: str, path: str, body: dict[str, Any] | None = None, **headers: str
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def chat(model: str = "m", user: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [SYSTEM, {"role": "user", "content": user}], **extra}


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """Start a server for a script; every server started is stopped after the test."""
    started: list[ScriptedServer] = []

    def start(script: dict[str, Any], **kwargs: Any) -> ScriptedServer:
        started.append(ScriptedServer(script, **kwargs).start())
        return started[-1]

    yield start
    for srv in started:
        srv.stop()


TWO_CALLS = {
    "turns": [
        {
            "content": "1. read\n2. fix it quickly",
            "tool_calls": [
                {"name": "read_file", "arguments": {"path": "a.py"}},
                {"name": "edit_file", "arguments": '{"path": "a.py", "old": '},
            ],
        }
    ]
}


async def test_stream_content_and_two_tool_calls(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(TWO_CALLS)
    stream = await client(server).chat.completions.create(
        **chat(), tools=TOOLS, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and not first.content and not first.tool_calls
    content_deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(content_deltas) > 2 and "".join(content_deltas) == "1. read\n2. fix it quickly"
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if tc.id:
                assert tc.function and tc.function.name and tc.function.arguments == "" and tc.type == "function"
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            else:
                assert tc.function and tc.function.arguments and tc.function.name is None
                calls[tc.index]["arguments"] += tc.function.arguments
    assert [c["name"] for c in calls.values()] == ["read_file", "edit_file"]
    assert json.loads(calls[0]["arguments"]) == {"path": "a.py"}
    assert calls[1]["arguments"] == '{"path": "a.py", "old": '  # raw string sent verbatim
    assert calls[0]["id"] != calls[1]["id"]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 0
    assert last.usage.completion_tokens >= 1 and server.remaining == 0


async def test_plain_response(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(TWO_CALLS)
    response = await client(server).chat.completions.create(**chat())
    message = response.choices[0].message
    assert message.content == "1. read\n2. fix it quickly" and response.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and [tc.function.name for tc in message.tool_calls] == [
        "read_file",
        "edit_file",
    ]
    assert message.tool_calls[0].id.startswith("call_")
    assert response.usage and response.usage.total_tokens > response.usage.prompt_tokens


async def test_prefix_cache(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"turns": [{"content": "a"}, {"content": "b"}, {"content": "c"}]})
    api = client(server)
    first = await api.chat.completions.create(**chat(user="fix the bug"))
    history = [SYSTEM, {"role": "user", "content": "fix the bug"}, {"role": "assistant", "content": "a"}]
    second = await api.chat.completions.create(
        model="m", messages=[*history, {"role": "user", "content": "and the test"}]
    )
    other = {"role": "system", "content": "Something else entirely."}
    third = await api.chat.completions.create(model="m", messages=[other, {"role": "user", "content": "x"}])
    cached = [r.usage.prompt_tokens_details.cached_tokens for r in (first, second, third)]  # type: ignore[union-attr]
    assert cached[0] == 0
    assert cached[1] >= first.usage.prompt_tokens - 10  # type: ignore[union-attr]
    assert cached[2] < cached[1]


async def test_warmup_consumes_no_turn(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"turns": [{"content": "real"}]})
    api = client(server)
    warm = await api.chat.completions.create(**chat(), max_tokens=1)
    assert warm.choices[0].message.content == "" and warm.choices[0].finish_reason == "length"
    assert warm.usage and warm.usage.prompt_tokens > 0 and server.remaining == 1
    real = await api.chat.completions.create(**chat(user="hi there"))
    assert real.choices[0].message.content == "real" and server.remaining == 0
    assert real.usage and real.usage.prompt_tokens_details
    assert real.usage.prompt_tokens_details.cached_tokens > 0  # the warm-up filled the cache
    assert [r.get("max_tokens") for r in server.requests] == [1, None]


async def test_per_model_turns(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"turns": [{"content": "A1", "model": "a"}, {"content": "B1", "model": "b"}, {"content": "any"}]})
    api = client(server)
    b = await api.chat.completions.create(**chat(model="b"))
    a = await api.chat.completions.create(**chat(model="a"))
    b2 = await api.chat.completions.create(**chat(model="b"))
    assert [r.choices[0].message.content for r in (b, a, b2)] == ["B1", "A1", "any"]
    status, data = raw(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in json.loads(data)["data"]] == ["scripted-model", "a", "b"]


async def test_error_turn_then_exhausted(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"turns": [{"error": {"status": 500, "message": "boom"}}, {"content": "ok"}]})
    api = client(server)
    with pytest.raises(openai.InternalServerError, match="boom"):
        await api.chat.completions.create(**chat())
    assert server.remaining == 1
    ok = await api.chat.completions.create(**chat(), stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in ok if c.choices]) == "ok"
    with pytest.raises(openai.BadRequestError, match=r"script exhausted \(2 requests served\)"):
        await api.chat.completions.create(**chat())


def test_llamacpp_timings(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"turns": [{"content": "x"}, {"content": "y"}]}, flavor="llamacpp")
    status, data = raw(server, "POST", "/v1/chat/completions", chat())
    assert status == 200 and json.loads(data)["timings"]["cache_n"] == 0
    status, data = raw(server, "POST", "/v1/chat/completions", chat(user="hi again", stream=True))
    events = [json.loads(line[6:]) for line in data.decode().split("\n\n") if line.startswith("data: {")]
    assert data.decode().endswith("data: [DONE]\n\n")
    assert "timings" in events[-1] and events[-1]["choices"][0]["finish_reason"] == "stop"
    timings = events[-1]["timings"]
    assert timings["cache_n"] > 0 and timings["prompt_n"] + timings["cache_n"] > timings["cache_n"]
    assert set(timings) >= {
        "prompt_ms",
        "predicted_n",
        "predicted_ms",
        "predicted_per_second",
        "prompt_per_second",
    }


def test_vllm_per_request_metrics(serve: Callable[..., ScriptedServer]) -> None:
    script = {"turns": [{"content": "x"}, {"content": "y"}, {"content": "z"}, {"content": "a"}, {"content": "b"}]}
    server = serve(script, flavor="vllm", latency=Latency(ttft_ms=30))
    status, data = raw(server, "POST", "/v1/chat/completions", chat())
    metrics = json.loads(data)["metrics"]
    assert status == 200 and "timings" not in json.loads(data) and metrics["time_to_first_token_ms"] >= 30
    assert set(metrics) == {"time_to_first_token_ms", "generation_time_ms", "queue_time_ms", "mean_itl_ms",
                            "tokens_per_second"}  # fmt: skip
    status, data = raw(server, "POST", "/v1/chat/completions", chat(stream=True))  # no usage asked: no metrics
    assert status == 200 and b"metrics" not in data
    usage = {"stream": True, "stream_options": {"include_usage": True}}
    status, data = raw(server, "POST", "/v1/chat/completions", chat(**usage))
    events = [json.loads(line[6:]) for line in data.decode().split("\n\n") if line.startswith("data: {")]
    assert [e for e in events if e.get("metrics")] == [events[-1]]  # on the final usage chunk only
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    assert events[-1]["metrics"]["time_to_first_token_ms"] >= 30
    status, data = raw(server, "POST", "/v1/chat/completions", chat(n=2))  # n > 1: no single stream to time
    assert status == 200 and json.loads(data)["metrics"] is None


async def test_latency_model(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(
        {"turns": [{"content": "one two three four five six seven"}]},
        latency=Latency(ttft_ms=200, decode_tps=100),
    )
    t0 = time.perf_counter()
    stream = await client(server).chat.completions.create(**chat(), stream=True)
    arrivals: list[tuple[float, str | None]] = []
    async for chunk in stream:
        if chunk.choices:
            arrivals.append((time.perf_counter() - t0, chunk.choices[0].delta.content))
    role_at = arrivals[0][0]
    first_token_at = next(t for t, text in arrivals if text)
    assert role_at < first_token_at and first_token_at >= 0.2
    assert arrivals[-1][0] - first_token_at >= 0.07  # 8 tokens at 100 tok/s, spread over the chunks


def test_health_auth_and_strict_models(serve: Callable[..., ScriptedServer]) -> None:
    server = serve({"turns": [], "strict_models": True, "require_api_key": "sekret"})
    assert raw(server, "GET", "/health") == (200, b'{"status": "ok"}')
    status, data = raw(server, "POST", "/v1/chat/completions", chat())
    assert status == 401 and json.loads(data)["error"]["type"] == "authentication_error"
    status, data = raw(server, "POST", "/v1/chat/completions", chat(model="nope"), Authorization="Bearer sekret")
    assert status == 404
    assert json.loads(data)["error"]["code"] == "model_not_found" and "`nope`" in data.decode()
    status, data = raw(
        server, "POST", "/v1/chat/completions", chat(model="scripted-model"), Authorization="Bearer sekret"
    )
    assert status == 400 and "script exhausted (0 requests served)" in data.decode()
    assert len(server.requests) == 3


def test_cli_serves(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"model": "cli-model", "turns": [{"content": "from cli"}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastcode.testing.scripted_server", "--script", str(script), "--ttft-ms", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:") and line.endswith("/v1")
        host_port = line.removeprefix("listening on http://").removesuffix("/v1")
        conn = http.client.HTTPConnection(host_port, timeout=5)
        conn.request("POST", "/v1/chat/completions", json.dumps(chat(model="cli-model")))
        answer = json.loads(conn.getresponse().read())
        assert answer["choices"][0]["message"]["content"] == "from cli"
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_cache_completions_caches_the_answer_a_client_sends_back() -> None:
    import json as _json
    import urllib.request

    from fastcode.testing.scripted_server import Latency, ScriptedServer

    script = {"turns": [{"content": "hello there, a long enough answer"}, {"content": "second"}]}
    tools: list = []
    first = [{"role": "user", "content": "hi"}]

    def post(server: ScriptedServer, messages: list) -> dict:
        body = {"model": "m", "messages": messages, "tools": tools, "stream": False}
        request = urllib.request.Request(server.base_url + "/chat/completions", data=_json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request) as response:
            return _json.loads(response.read())

    results = {}
    for flag in (False, True):
        with ScriptedServer(script, latency=Latency(cache_completions=flag)).start() as server:
            answer = post(server, first)["choices"][0]["message"]
            echoed = {"role": "assistant", "content": answer["content"]}
            usage = post(server, [*first, echoed, {"role": "user", "content": "more"}])["usage"]
            results[flag] = usage["prompt_tokens_details"]["cached_tokens"]
    assert results[True] > results[False]
