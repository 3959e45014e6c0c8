"""One streamed chat call to an OpenAI-compatible endpoint, timed and measured.

Records TTFT (the first chunk carrying content, reasoning or a tool-call delta — not the role-only first chunk),
decode time, prompt / cached / completion tokens (from `usage.prompt_tokens_details`, llama.cpp's `timings` or
Groq's `x_groq.usage`) and the server's own prefill time (llama.cpp's `timings`, vLLM's `metrics`, which a stream
carries on the usage chunk `stream_options.include_usage` asks for), retries connection errors, 429 and 5xx with
backoff (honouring `Retry-After` up to `retry_after_max_s`), and turns every other failure into an `EndpointError`
with one plain line: an answer that is not an OpenAI chat completion (HTML from a proxy, garbage, another protocol),
an `error` event in the stream, and the four deadlines — connect, first token (on top of the prompt's expected
prefill), idle stream, whole request — each named by its setting. A non-streamed JSON completion is accepted.
`openai` is imported on first use, never at module import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from fastcode.core.config import ModelProfile
from fastcode.core.events import ToolCallSpec
from fastcode.core.safe_text import clean, clean_value
from fastcode.models.wire import TokenCounts, is_loopback, merge_token_counts

NO_KEY = "sk-no-key-required"
LOCAL_KEY_ENV = "FASTCODE_LOCAL_API_KEY"
"""The key variable of the profile a run points at a llama-server fastcode started itself (`--local`, or the
embedded model): a hosted provider's key is never sent to the local server."""


class Deadline(Exception):
    """A deadline of one call passed: which setting, after how many seconds."""

    def __init__(self, setting: str, seconds: float) -> None:
        super().__init__(setting)
        self.setting, self.seconds = setting, seconds


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
    setup_ms: float = 0.0
    """fastcode's own time before the request went out (making the HTTP client, on a profile's first call)."""
    server_prefill_ms: float = 0.0
    """The server's own time on the prompt, where it reports it (llama.cpp, vLLM with per-request metrics); TTFT minus
    this is queue and network."""
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


PROVIDERS = {
    "api.openai.com": "openai",
    "api.groq.com": "groq",
    "api.anthropic.com": "anthropic",
    "api.mistral.ai": "mistral_ai",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}
"""Hosts of well-known providers -> their OpenTelemetry `gen_ai.provider.name`."""


def provider_name(profile: ModelProfile) -> str:
    """`gen_ai.provider.name` of a chat span: the well-known name of the host, else the server family (llama.cpp,
    vllm), else the host itself."""
    host = (urlparse(profile.base_url).hostname or "").lower()
    if host in PROVIDERS:
        return PROVIDERS[host]
    return {"llamacpp": "llama.cpp", "vllm": "vllm"}.get(server_kind(profile), host)


def cache_hints(profile: ModelProfile, cache_key: str) -> dict[str, Any]:
    """Extra request fields that keep the server's prompt cache warm across calls."""
    kind = server_kind(profile)
    if kind == "openai":
        return {"prompt_cache_key": cache_key}
    if kind == "llamacpp":
        return {"cache_prompt": True}
    return {}


def launched_here(profile: ModelProfile) -> bool:
    """True for the profile of a llama-server fastcode started on this machine (see `LOCAL_KEY_ENV`)."""
    return profile.api_key_env == LOCAL_KEY_ENV


def api_key(profile: ModelProfile) -> str:
    return os.environ.get(profile.api_key_env) or NO_KEY


class ChatClient:
    """Streams chat completions from one model profile."""

    def __init__(
        self, profile: ModelProfile, *, max_retries: int = 4, cache_key: str = "fastcode", name: str = "default"
    ) -> None:
        self.profile, self.name = profile, name
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
                timeout=openai.Timeout(self.profile.request_timeout_s, connect=self.profile.connect_timeout_s),
            )
        return self._client

    def request_body(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **extra: Any) -> dict:
        body: dict[str, Any] = {
            "model": self.profile.model,
            "messages": clean_value(messages),  # a lone surrogate the model sent back cannot be encoded as UTF-8
            "stream": True,
            "stream_options": {"include_usage": True},
            **cache_hints(self.profile, self.cache_key),
        }
        if server_kind(self.profile) == "llamacpp":
            body["return_progress"] = True  # prompt-progress events while a long prompt is prefilled: see `_attempt`
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
        on_retry: Callable[[float, str], None] | None = None,
        prefill_s: float = 0.0,
        **extra: Any,
    ) -> CallResult:
        """Run one call, retrying transient failures that happen before any token arrived. `prefill_s`: how long the
        prompt's prefill should take at the endpoint's measured rate (added to the first-token deadline);
        `on_retry(wait_s, reason)` is told before each wait."""
        import openai

        body = self.request_body(messages, tools, **extra)
        known = {"model", "messages", "stream", "stream_options", "tools", "tool_choice", "max_tokens"}
        known |= {"temperature", "prompt_cache_key", "n", "seed"}
        kwargs = {k: v for k, v in body.items() if k in known}
        extra_body = {k: v for k, v in body.items() if k not in known}
        attempt = 0
        while True:
            result = CallResult()
            try:
                await self._attempt(kwargs, extra_body, result, prefill_s, on_first_token, on_text, on_call_ready)
                return result
            except Deadline as exc:
                raise self._deadline(exc) from None
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
                if not_http := await _not_http(exc, self.profile.base_url):
                    raise EndpointError(
                        "protocol",
                        f"{self.profile.base_url} does not look like an OpenAI-compatible endpoint: {not_http}",
                    ) from None
                if result.ttft_ms is not None or attempt >= self.max_retries:
                    raise self._describe(exc, attempt) from None
                wait, reason = self._wait(exc, attempt)
            except openai.APIStatusError as exc:
                if exc.status_code < 500 or attempt >= self.max_retries:
                    raise self._describe(exc, attempt) from None
                wait, reason = self._wait(exc, attempt)
            except openai.APIError as exc:  # an `error` event inside the stream
                raise EndpointError(
                    "server", f"endpoint {self.profile.base_url} sent an error in the stream: {_server_message(exc)}"
                ) from None
            attempt += 1
            if on_retry:
                on_retry(wait, reason)
            await asyncio.sleep(wait)

    async def _attempt(
        self,
        kwargs: dict[str, Any],
        extra_body: dict[str, Any],
        result: CallResult,
        prefill_s: float,
        on_first_token: Callable[[float], None] | None,
        on_text: Callable[[str, str], None] | None,
        on_call_ready: Callable[[ToolCallSpec], None] | None,
    ) -> None:
        """One request under its deadlines: first token (plus prefill), then idle between chunks, and the whole.
        A server that reports its progress on the prompt (llama.cpp's `prompt_progress`, one report per batch of
        prompt tokens) proves it is working: each report also restarts the first-token deadline, so a prefill
        slower than the allowance is waited for as long as it moves."""
        loop, started = asyncio.get_running_loop(), time.perf_counter()
        first_s = self.profile.first_token_timeout_s + max(prefill_s, 0.0)
        begun = loop.time()
        whole, first_at = begun + self.profile.request_timeout_s, begun + first_s
        response: Any = None

        def deadline() -> tuple[float, Deadline]:
            if result.ttft_ms is None:
                at, missed = first_at, Deadline("first_token_timeout_s", first_s)
                if progress_at is not None and progress_at + self.profile.first_token_timeout_s > first_at:
                    at = progress_at + self.profile.first_token_timeout_s
                    missed = Deadline("first_token_timeout_s", at - begun)
                if at < whole:
                    return at, missed
            idle = loop.time() + self.profile.idle_timeout_s
            if result.ttft_ms is not None and idle < whole:
                return idle, Deadline("idle_timeout_s", self.profile.idle_timeout_s)
            return whole, Deadline("request_timeout_s", self.profile.request_timeout_s)

        progress_at: float | None = None
        when, missed = deadline()
        try:
            async with asyncio.timeout_at(when) as timer:

                def tick(progress: bool) -> None:
                    nonlocal missed, progress_at
                    if progress:
                        progress_at = loop.time()
                    when, missed = deadline()
                    timer.reschedule(when)

                completions = self._openai().chat.completions
                result.setup_ms = round((time.perf_counter() - started) * 1000, 2)
                response = await completions.create(**kwargs, extra_body=extra_body or None)
                chunks = await self._stream_of(response, result, started, on_first_token, on_text)
                if chunks is not None:
                    await self._consume(chunks, result, started, on_first_token, on_text, on_call_ready, tick)
        except TimeoutError:
            raise missed from None
        finally:
            if response is not None:
                with contextlib.suppress(Exception):
                    await response.close()

    async def _stream_of(
        self,
        response: Any,
        result: CallResult,
        started: float,
        on_first_token: Callable[[float], None] | None,
        on_text: Callable[[str, str], None] | None,
    ) -> AsyncIterator[Any] | None:
        """The chunks to consume: the event stream's, or those of a stream the server labelled as something else.
        None when the answer was a plain JSON completion (taken into `result` here). Anything else (HTML from a
        captive portal or proxy, text) is an EndpointError naming the content type and the first bytes."""
        http = getattr(response, "response", None)
        ctype = (http.headers.get("content-type", "") if http is not None else "").lower()
        if not ctype or "text/event-stream" in ctype:
            return self._chunks(response)
        head, pieces = b"", http.aiter_bytes()
        async for piece in pieces:
            head += piece
            if len(head) > _MAX_JSON_BODY:
                break
        if head.lstrip().startswith((b"data:", b":", b"event:")):  # a stream all the same, mislabelled
            async for piece in pieces:
                head += piece
            return _listed(self._sse_chunks(head))
        data: Any = None
        if "json" in ctype:
            with contextlib.suppress(ValueError, RecursionError):
                data = json.loads(head)
        if isinstance(data, dict) and isinstance(data.get("choices"), list):
            _from_completion(data, result, started, on_first_token, on_text)
            return None
        if isinstance(data, dict) and data.get("error"):
            message = data["error"].get("message") if isinstance(data["error"], dict) else data["error"]
            raise EndpointError("server", f"endpoint {self.profile.base_url} answered with an error: {message}")
        shown = head[:80].decode("utf-8", "replace").replace("\n", " ")
        raise EndpointError(
            "protocol",
            f"endpoint {self.profile.base_url} answered {ctype.split(';')[0]}, not an OpenAI chat completion "
            f"stream (it begins {shown!r}); is the URL right, or is a proxy or login page in the way?",
        )

    def _sse_chunks(self, body: bytes) -> list[Any]:
        """The chunks of an event stream read as a whole body (validated here: nothing decoded them)."""
        from openai.types.chat import ChatCompletionChunk
        from pydantic import ValidationError

        chunks = []
        for line in body.splitlines():
            payload = line[5:].strip() if line.startswith(b"data:") else b""
            if not payload:
                continue
            if payload == b"[DONE]":
                break
            try:
                data = json.loads(payload)
                if isinstance(data, dict) and data.get("error"):
                    raise EndpointError("server", f"endpoint {self.profile.base_url} sent an error in the stream: "
                                                  f"{str(data['error'])[:300]}")  # fmt: skip
                chunks.append(ChatCompletionChunk.model_validate(data))
            except (ValueError, RecursionError, ValidationError) as exc:
                raise self._garbled(str(exc)) from None
        return chunks

    def _wait(self, exc: Exception, attempt: int) -> tuple[float, str]:
        """How long to wait before retry `attempt + 1`, and why: the server's Retry-After when it sends one (capped by
        `retry_after_max_s`; longer fails at once), else exponential backoff."""
        status = getattr(exc, "status_code", None)
        reason = f"HTTP {status}" if status else type(exc).__name__
        asked = _retry_after(exc)
        if asked is None:
            return min(0.25 * 2 ** (attempt + 1), 8.0), reason
        cap = self.profile.retry_after_max_s
        if asked > cap:
            raise EndpointError(
                "rate_limit",
                f"endpoint {self.profile.base_url} answered {status} and asked to retry after {asked:g} s, more than "
                f"models.{self.name}.retry_after_max_s ({cap:g} s)",
            )
        return asked, f"{reason}, Retry-After {asked:g} s"

    async def _chunks(self, response: Any) -> AsyncIterator[Any]:
        """The stream's chunks; anything that is not an OpenAI chunk (garbage, a JSON list, a broken event) is an
        EndpointError instead of an exception from deep inside the decoder."""
        iterator = response.__aiter__()
        while True:
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
                raise self._garbled(str(exc) or type(exc).__name__) from None
            if not hasattr(chunk, "choices") or not isinstance(chunk.choices or [], list):
                raise self._garbled(f"a chunk without a choices list: {str(chunk)[:80]}")
            yield chunk

    def _garbled(self, detail: str) -> EndpointError:
        return EndpointError(
            "protocol",
            f"endpoint {self.profile.base_url} did not speak the OpenAI streaming protocol "
            f"({detail.splitlines()[0][:160] if detail.strip() else 'unreadable event'})",
        )

    def _deadline(self, missed: Deadline) -> EndpointError:
        what = {
            "first_token_timeout_s": "sent no token",
            "idle_timeout_s": "stopped sending tokens: nothing",
            "request_timeout_s": "did not finish the answer",
        }[missed.setting]
        return EndpointError(
            "timeout",
            f"endpoint {self.profile.base_url} {what} within {missed.seconds:.0f} s "
            f"(raise models.{self.name}.{missed.setting} if it is just slow)",
        )

    async def _consume(
        self,
        chunks: AsyncIterator[Any],
        result: CallResult,
        started: float,
        on_first_token: Callable[[float], None] | None,
        on_text: Callable[[str, str], None] | None,
        on_call_ready: Callable[[ToolCallSpec], None] | None = None,
        tick: Callable[[bool], None] = lambda progress: None,
    ) -> None:
        calls: dict[int, dict[str, str]] = {}
        reported: set[int] = set()
        first: float | None = None
        others: dict[int, tuple[CallResult, dict[int, dict[str, str]]]] = {}
        seen = 0
        async for chunk in chunks:
            try:
                first = self._one_chunk(chunk, result, calls, reported, first, others, started,
                                        on_first_token, on_text, on_call_ready)  # fmt: skip
            except (AttributeError, TypeError) as exc:  # a field of the wrong type: not an OpenAI chunk
                raise self._garbled(f"{type(exc).__name__}: {exc}") from None
            seen += 1
            tick(getattr(chunk, "prompt_progress", None) is not None)
        if not seen:  # every OpenAI-compatible stream has at least one chunk: this was not one
            raise self._garbled("an answer with no events")
        end = time.perf_counter()
        result.total_ms = round((end - started) * 1000, 2)
        result.decode_ms = round((end - first) * 1000, 2) if first is not None else 0.0
        result.tool_calls = _calls(calls)
        for _, (other, other_calls) in sorted(others.items()):
            other.tool_calls = _calls(other_calls)
            other.decode_ms, other.total_ms = result.decode_ms, result.total_ms
            result.more.append(other)

    @staticmethod
    def _one_chunk(
        chunk: Any,
        result: CallResult,
        calls: dict[int, dict[str, str]],
        reported: set[int],
        first: float | None,
        others: dict[int, tuple[CallResult, dict[int, dict[str, str]]]],
        started: float,
        on_first_token: Callable[[float], None] | None,
        on_text: Callable[[str, str], None] | None,
        on_call_ready: Callable[[ToolCallSpec], None] | None,
    ) -> float | None:
        """Fold one chunk into `result` (and the other choices into `others`); returns when the first token came."""
        _read_usage(chunk, result)
        for choice in chunk.choices or ():
            delta = choice.delta
            if getattr(choice, "index", 0):  # another choice of an `n` > 1 request: collected, not streamed
                other = others.setdefault(choice.index, (CallResult(), {}))
                _collect(other[0], other[1], choice)
                continue
            if isinstance(choice.finish_reason, str) and choice.finish_reason:
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
        return first

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


_MAX_JSON_BODY = 4_000_000
"""Bytes of a non-streamed answer read at most (a JSON completion is far smaller; an endless page is not read)."""


async def _listed(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


async def _not_http(exc: Exception, base_url: str) -> str:
    """Why the peer is not an HTTP server at all (another service on the port), or "". The HTTP stack cannot tell
    a banner followed by a hang-up from a server that hung up, so on a protocol error the port is asked once more,
    by hand: an answer that does not begin with `HTTP/` is not HTTP; no answer is a hang-up, retried as usual."""
    cause: BaseException | None = exc
    while cause is not None and type(cause).__name__ != "RemoteProtocolError":
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return ""
    head = await asyncio.to_thread(_probe, base_url)
    if not head or head.startswith(b"HTTP/"):
        return ""
    return f"it answered {head[:40].decode('utf-8', 'replace').strip()!r} instead of HTTP"


def _probe(base_url: str) -> bytes:
    """The first bytes the endpoint's port sends back to a plain HTTP request ("" when none within 2 s)."""
    import socket

    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    if url.scheme == "https" or not url.hostname:
        return b""  # TLS errors name themselves
    try:
        with socket.create_connection((url.hostname, port), timeout=2) as sock:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {url.hostname}\r\n\r\n".encode())
            return sock.recv(64)
    except OSError:
        return b""


def _retry_after(exc: Exception) -> float | None:
    """The server's Retry-After in seconds (a number or an HTTP date), or None."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _from_completion(
    data: dict[str, Any],
    result: CallResult,
    started: float,
    on_first_token: Callable[[float], None] | None,
    on_text: Callable[[str, str], None] | None,
) -> None:
    """Fill `result` from a non-streamed chat completion (`choices[i].message`)."""
    now = time.perf_counter()
    result.ttft_ms = result.total_ms = round((now - started) * 1000, 2)
    if on_first_token:
        on_first_token(result.ttft_ms)
    usage = data.get("usage")
    _take_counts(result, merge_token_counts(TokenCounts(), usage if isinstance(usage, dict) else None, data))
    for i, choice in enumerate(data["choices"]):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        target = result if i == 0 else CallResult()
        target.finish_reason = choice.get("finish_reason")
        content = message.get("content")
        target.content = clean(content) if isinstance(content, str) else ""
        calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else []
        for n, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                arguments = function.get("arguments")
                target.tool_calls.append(ToolCallSpec(
                    id=str(call.get("id") or f"call_{n}"), name=clean(str(function.get("name") or "")),
                    arguments=clean(arguments if isinstance(arguments, str) else json.dumps(arguments)),
                ))  # fmt: skip
        if i == 0 and on_text and target.content:
            on_text(target.content, "content")
        if i > 0:
            result.more.append(target)


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
    if hasattr(usage, "model_dump"):
        usage = usage.model_dump()
    before = TokenCounts(result.prompt_tokens, result.cached_tokens, result.completion_tokens, result.server_prefill_ms)
    usage, extra = usage if isinstance(usage, dict) else None, extra if isinstance(extra, dict) else {}
    _take_counts(result, merge_token_counts(before, usage, extra))


def _take_counts(result: CallResult, counts: TokenCounts) -> None:
    result.prompt_tokens, result.cached_tokens = counts.prompt, counts.cached
    result.completion_tokens, result.server_prefill_ms = counts.completion, round(counts.prefill_ms, 2)


def _collect(result: CallResult, calls: dict[int, dict[str, str]], choice: Any) -> None:
    """Add one streamed delta of a choice that is not streamed to the user (index > 0) to its result."""
    if isinstance(choice.finish_reason, str) and choice.finish_reason:
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
    index = tc.index if isinstance(tc.index, int) else 0
    slot = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
    slot["id"] = tc.id if isinstance(tc.id, str) and tc.id else slot["id"]
    if tc.function is not None:
        slot["name"] += clean(_piece(tc.function.name))
        slot["arguments"] += clean(_piece(tc.function.arguments))
    return slot


def _piece(value: Any) -> str:
    """A streamed name or arguments fragment as text: some servers send arguments as an object, not a string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


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
