"""One streamed chat call to an OpenAI-compatible endpoint, timed and measured.

Records TTFT (the first chunk carrying content, reasoning or a tool-call delta — not the role-only first chunk),
decode time, prompt / cached / completion tokens (from `usage.prompt_tokens_details`, llama.cpp's `timings` or
Groq's `x_groq.usage`), retries connection errors, 429 and 5xx with backoff, and turns every other failure into an
`EndpointError` with one plain line. `openai` is imported on first use, never at module import.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from fastcode.core.config import ModelProfile
from fastcode.core.events import ToolCallSpec
from fastcode.core.safe_text import clean
from fastcode.models.wire import TokenCounts, is_loopback, merge_token_counts

NO_KEY = "sk-no-key-required"


class EndpointError(Exception):
    """The endpoint failed in a way retrying will not fix (or retries ran out). Exit code 3."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class CallResult:
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    decode_ms: float = 0.0
    total_ms: float = 0.0
    more: list[CallResult] = field(default_factory=list)
    """The other choices of a request with `n` > 1 (their content and calls; usage is counted on this one)."""

    @property
    def decode_tps(self) -> float | None:
        if self.completion_tokens > 1 and self.decode_ms > 0:
            return round((self.completion_tokens - 1) / (self.decode_ms / 1000), 1)
        return None


def server_kind(profile: ModelProfile) -> str:
    """openai, llamacpp, vllm or other: decides which prompt-cache hints a request carries."""
    if profile.kind != "auto":
        return profile.kind
    if (urlparse(profile.base_url).hostname or "").endswith("openai.com"):
        return "openai"
    if is_loopback(profile.base_url):
        return "llamacpp"
    return "other"


def cache_hints(profile: ModelProfile, cache_key: str) -> dict[str, Any]:
    """Extra request fields that keep the server's prompt cache warm across calls."""
    kind = server_kind(profile)
    if kind == "openai":
        return {"prompt_cache_key": cache_key}
    if kind == "llamacpp":
        return {"cache_prompt": True}
    return {}


def api_key(profile: ModelProfile) -> str:
    return os.environ.get(profile.api_key_env) or NO_KEY


class ChatClient:
    """Streams chat completions from one model profile."""

    def __init__(self, profile: ModelProfile, *, max_retries: int = 4, cache_key: str = "fastcode") -> None:
        self.profile = profile
        self.max_retries = max_retries
        self.cache_key = cache_key
        self._client: Any = None

    def _openai(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                base_url=self.profile.base_url,
                api_key=api_key(self.profile),
                max_retries=0,
                timeout=self.profile.request_timeout_s,
            )
        return self._client

    def request_body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **extra: Any) -> dict:
        body: dict[str, Any] = {
            "model": self.profile.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **cache_hints(self.profile, self.cache_key),
        }
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        if self.profile.max_tokens is not None:
            body["max_tokens"] = self.profile.max_tokens
        if self.profile.temperature is not None:
            body["temperature"] = self.profile.temperature
        body.update(extra)
        return body

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        on_first_token: Callable[[float], None] | None = None,
        on_text: Callable[[str, str], None] | None = None,
        on_call_ready: Callable[[ToolCallSpec], None] | None = None,
        **extra: Any,
    ) -> CallResult:
        """Run one call, retrying transient failures that happen before any token arrived."""
        import openai

        body = self.request_body(messages, tools, **extra)
        known = {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "max_tokens"}
        known |= {"temperature", "prompt_cache_key", "n", "seed"}
        kwargs = {k: v for k, v in body.items() if k in known}
        extra_body = {k: v for k, v in body.items() if k not in known}
        client = self._openai()
        attempt = 0
        while True:
            started = time.perf_counter()
            result = CallResult()
            try:
                response = await client.chat.completions.create(**kwargs, extra_body=extra_body or None)
                await self._consume(response, result, started, on_first_token, on_text, on_call_ready)
                return result
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                if result.ttft_ms is not None or attempt >= self.max_retries:
                    raise self._describe(exc, attempt) from None
            except openai.APIStatusError as exc:
                if exc.status_code < 500 or attempt >= self.max_retries:
                    raise self._describe(exc, attempt) from None
            attempt += 1
            await asyncio.sleep(min(0.25 * 2**attempt, 8.0))

    async def _consume(
        self,
        response: Any,
        result: CallResult,
        started: float,
        on_first_token: Callable[[float], None] | None,
        on_text: Callable[[str, str], None] | None,
        on_call_ready: Callable[[ToolCallSpec], None] | None = None,
    ) -> None:
        calls: dict[int, dict[str, str]] = {}
        reported: set[int] = set()
        first: float | None = None
        others: dict[int, tuple[CallResult, dict[int, dict[str, str]]]] = {}
        async for chunk in response:
            _read_usage(chunk, result)
            for choice in chunk.choices or ():
                delta = choice.delta
                if getattr(choice, "index", 0):  # another choice of an `n` > 1 request: collected, not streamed
                    other = others.setdefault(choice.index, (CallResult(), {}))
                    _collect(other[0], other[1], choice)
                    continue
                if choice.finish_reason:
                    result.finish_reason = choice.finish_reason
                if delta is None:
                    continue
                reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                reasoning = clean(reasoning) if isinstance(reasoning, str) else reasoning
                delta.content = clean(delta.content) if isinstance(delta.content, str) else delta.content
                if first is None and (delta.content or reasoning or delta.tool_calls):
                    first = time.perf_counter()
                    result.ttft_ms = round((first - started) * 1000, 2)
                    if on_first_token:
                        on_first_token(result.ttft_ms)
                if delta.content:
                    result.content += delta.content
                    if on_text:
                        on_text(delta.content, "content")
                if isinstance(reasoning, str) and reasoning:
                    result.reasoning += reasoning
                    if on_text:
                        on_text(reasoning, "reasoning")
                for tc in delta.tool_calls or ():
                    slot = _add_call_delta(calls, tc)
                    if on_call_ready and tc.index not in reported and _complete(slot["arguments"]):
                        reported.add(tc.index)
                        on_call_ready(
                            ToolCallSpec(
                                id=slot["id"] or f"call_{tc.index}", name=slot["name"], arguments=slot["arguments"]
                            )
                        )
        end = time.perf_counter()
        result.total_ms = round((end - started) * 1000, 2)
        result.decode_ms = round((end - first) * 1000, 2) if first is not None else 0.0
        result.tool_calls = _calls(calls)
        for _, (other, other_calls) in sorted(others.items()):
            other.tool_calls = _calls(other_calls)
            other.decode_ms, other.total_ms = result.decode_ms, result.total_ms
            result.more.append(other)

    def _describe(self, exc: Exception, retries: int) -> EndpointError:
        import openai

        url = self.profile.base_url
        after = f" after {retries} retries" if retries else ""
        if isinstance(exc, openai.APITimeoutError):
            return EndpointError(
                "timeout", f"endpoint {url} did not answer within {self.profile.request_timeout_s:g} s{after}"
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            reason = f" ({cause})" if cause else ""
            return EndpointError("unreachable", f"cannot reach endpoint {url}{reason}{after}")
        if isinstance(exc, openai.AuthenticationError):
            return EndpointError(
                "auth", f"endpoint {url} rejected the API key (401): check ${self.profile.api_key_env}"
            )
        status = getattr(exc, "status_code", None)
        message = _server_message(exc)
        if status == 404 and ("model" in message.lower() or "does not exist" in message.lower()):
            return EndpointError("model_not_found", f"model {self.profile.model!r} not found at {url}: {message}")
        if isinstance(exc, openai.RateLimitError):
            return EndpointError("rate_limit", f"endpoint {url} kept rate-limiting (429){after}: {message}")
        return EndpointError("server", f"endpoint {url} answered {status}{after}: {message}")


def _server_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", exc)).splitlines()[0][:300]


def _read_usage(chunk: Any, result: CallResult) -> None:
    usage = getattr(chunk, "usage", None)
    extra = getattr(chunk, "model_extra", None) or {}
    if usage is None and not extra:
        return
    before = TokenCounts(result.prompt_tokens, result.cached_tokens, result.completion_tokens)
    counts = merge_token_counts(before, usage.model_dump() if usage is not None else None, extra)
    result.prompt_tokens, result.cached_tokens, result.completion_tokens = (
        counts.prompt,
        counts.cached,
        counts.completion,
    )


def _collect(result: CallResult, calls: dict[int, dict[str, str]], choice: Any) -> None:
    """Add one streamed delta of a choice that is not streamed to the user (index > 0) to its result."""
    if choice.finish_reason:
        result.finish_reason = choice.finish_reason
    delta = choice.delta
    if delta is None:
        return
    if isinstance(delta.content, str):
        result.content += clean(delta.content)
    for tc in delta.tool_calls or ():
        _add_call_delta(calls, tc)


def _add_call_delta(calls: dict[int, dict[str, str]], tc: Any) -> dict[str, str]:
    """Add one streamed piece of a tool call to its slot; the slot."""
    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
    slot["id"] = tc.id or slot["id"]
    if tc.function is not None:
        slot["name"] += clean(tc.function.name or "")
        slot["arguments"] += clean(tc.function.arguments or "")
    return slot


def _calls(calls: dict[int, dict[str, str]]) -> list[ToolCallSpec]:
    return [
        ToolCallSpec(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"])
        for i, c in sorted(calls.items())
    ]


def _complete(arguments: str) -> bool:
    """The streamed arguments are a whole JSON object (one more chunk could only add whitespace)."""
    text = arguments.strip()
    if not text.endswith("}"):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False
