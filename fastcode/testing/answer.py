"""One scripted answer on the wire: its usage, and llama.cpp-style `timings` or vLLM-style per-request `metrics` from
the latency model, sent as a plain chat.completion or as SSE chunks (a role-only first chunk, content, tool-call
deltas, the finish and usage chunks), each chunk released on the latency model's clock."""

from __future__ import annotations

import json
import time
from typing import Any

from fastcode.testing.script import Latency, Turn

CHARS_PER_TOKEN = 4
"""The fake tokenizer: every 4 characters of canonical JSON is one token."""


def _pieces(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


class Answer:
    """One completion: its usage, timings or metrics, and the plain or SSE response."""

    def __init__(
        self,
        latency: Latency,
        flavor: str,
        h: Any,
        body: dict[str, Any],
        model: str,
        turn: Turn | None,
        calls: list[tuple[str, str, str]],
        prompt: str,
        cached_chars: int,
        t0: float,
        serial: int,
    ) -> None:
        self.h, self.body, self.model, self.calls, self.t0 = h, body, model, calls, t0
        self.flavor = flavor
        self.content = turn.content if turn else ""
        self.reasoning = turn.reasoning if turn else ""
        default_finish = "length" if turn is None else "tool_calls" if calls else "stop"
        self.finish = (turn.finish_reason if turn else None) or default_finish
        self.id = f"chatcmpl-scripted-{serial}"
        self.choices: list[tuple[str, list[tuple[str, str, str]], str]] = []
        """Choices after the first (content, calls, finish reason), for a request with `n` > 1."""
        self.created = int(time.time())
        prompt_tokens = max(1, len(prompt) // CHARS_PER_TOKEN)
        cached = min(cached_chars // CHARS_PER_TOKEN, prompt_tokens)
        out_chars = len(self.content) + len(self.reasoning) + sum(len(a) for _, _, a in calls)
        completion = max(1, out_chars // CHARS_PER_TOKEN)
        lat = latency
        prefill_tokens = prompt_tokens - cached + cached * lat.cached_prefill_factor
        self.prefill_s = lat.ttft_ms / 1000 + prefill_tokens / lat.prefill_tps
        self.decode_s = completion / lat.decode_tps
        self.usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        self.timings = {
            "cache_n": cached,
            "prompt_n": prompt_tokens - cached,
            "prompt_ms": self.prefill_s * 1000,
            "predicted_n": completion,
            "predicted_ms": self.decode_s * 1000,
            "predicted_per_second": lat.decode_tps,
            "prompt_per_second": (prompt_tokens - cached) / self.prefill_s if self.prefill_s else 0.0,
        }

    def add_choices(self, turns: list[Turn], latency: Latency) -> None:
        """Further choices of a request for `n`: each turn one more choice; the decode time grows with their tokens
        as `latency.batch_parallel` says."""
        if not turns:
            return
        extra = 0
        for k, turn in enumerate(turns, 1):
            calls = [(f"call_{self.id}_{k}_{i}", c.name, c.arguments_text()) for i, c in enumerate(turn.tool_calls)]
            self.choices.append((turn.content, calls, turn.finish_reason or ("tool_calls" if calls else "stop")))
            extra += max(1, (len(turn.content) + sum(len(a) for _, _, a in calls)) // CHARS_PER_TOKEN)
        completion = self.usage["completion_tokens"] + extra
        self.decode_s = completion / (latency.decode_tps * min(len(self.choices) + 1, latency.batch_parallel))
        self.usage["completion_tokens"] = completion
        self.usage["total_tokens"] = self.usage["prompt_tokens"] + completion
        self.timings["predicted_n"], self.timings["predicted_ms"] = completion, self.decode_s * 1000

    def _reports(self, usage_chunk: bool) -> dict[str, Any]:
        """What the server family adds to an answer or to a stream's last chunk: llama.cpp its `timings`; vLLM
        (`--enable-per-request-metrics`) its `metrics`, which a stream carries on the usage chunk only."""
        if self.flavor == "llamacpp":
            return {"timings": self.timings}
        if self.flavor == "vllm" and usage_chunk:
            return {"metrics": self._metrics()}
        return {}

    def _metrics(self) -> dict[str, Any] | None:
        """vLLM's per-request metrics: `time_to_first_token_ms` counts from scheduling (the prefill); null for
        `n` > 1."""
        n = self.body.get("n")
        if self.choices or (isinstance(n, int) and n > 1):
            return None
        tokens, busy_s = self.usage["completion_tokens"], self.prefill_s + self.decode_s
        return {
            "time_to_first_token_ms": self.prefill_s * 1000,
            "generation_time_ms": self.decode_s * 1000,
            "queue_time_ms": 0.0,
            "mean_itl_ms": self.decode_s * 1000 / (tokens - 1) if tokens > 1 else None,
            "tokens_per_second": tokens / busy_s if busy_s else None,
        }

    def send(self) -> None:
        try:
            self._stream() if self.body.get("stream") else self._plain()
        except (BrokenPipeError, ConnectionResetError):
            self.h.close_connection = True  # the client went away mid-answer

    def _sleep_until(self, t: float) -> None:
        if (delay := t - time.perf_counter()) > 0:
            time.sleep(delay)

    def _plain(self) -> None:
        content = self.content or (None if self.calls else "")
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in self.calls
            ]
        others = [
            {"index": k, "message": _message(content, calls), "finish_reason": finish, "logprobs": None}
            for k, (content, calls, finish) in enumerate(self.choices, 1)
        ]
        payload = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish, "logprobs": None}, *others],
            "usage": self.usage,
        }
        payload |= self._reports(usage_chunk=True)
        self._sleep_until(self.t0 + self.prefill_s + self.decode_s)
        self.h.send_json(200, payload)

    def _deltas(self) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = [{"reasoning_content": p} for p in _pieces(self.reasoning)]
        return deltas + _content_deltas(self.content, self.calls)

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, index: int = 0) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}]
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        return chunk | {"choices": choices}

    def _stream(self) -> None:
        h = self.h
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

        def emit(chunk: dict[str, Any]) -> None:
            if include_usage and "usage" not in chunk:
                chunk["usage"] = None
            h.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            h.wfile.flush()

        emit(self._chunk({"role": "assistant", "content": ""}))  # role only: not a token
        deltas = [(0, d) for d in self._deltas()]
        for k, (content, calls, _) in enumerate(self.choices, 1):
            deltas += [(k, {"role": "assistant", "content": ""})] + [(k, d) for d in _content_deltas(content, calls)]
        first = self.t0 + self.prefill_s
        step = self.decode_s / max(1, len(deltas))
        for k, (index, delta) in enumerate(deltas):
            self._sleep_until(first + k * step)
            emit(self._chunk(delta, index=index))
        self._sleep_until(first + self.decode_s)
        for index, (_, _, finish) in enumerate(self.choices, 1):
            emit(self._chunk({}, finish, index=index))
        final = self._chunk({}, self.finish)
        if include_usage:
            emit(final)
            final = self._chunk(None) | {"usage": self.usage}
        emit(final | self._reports(usage_chunk=include_usage))
        h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()


def _message(content: str, calls: list[tuple[str, str, str]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
        ]
    return message


def _content_deltas(content: str, calls: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = [{"content": p} for p in _pieces(content)]
    for index, (call_id, name, args) in enumerate(calls):
        head = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        deltas.append({"tool_calls": [head]})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": p}}]} for p in _pieces(args)]
    return deltas
