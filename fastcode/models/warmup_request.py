"""The warm-up request: one `max_tokens: 1` chat completion carrying the agent's stable prefix (system prompt + tool
schemas), so the server's prompt cache already holds it when the first real call arrives.

Standard library only (http via urllib): it is cheap to import and safe to call from a thread while context is
being gathered. It never raises: failures come back as `WarmupResult(ok=False, error=...)`.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from fastcode.models.wire import TokenCounts, is_loopback, merge_token_counts


@dataclass(frozen=True)
class WarmupResult:
    ok: bool
    ms: float
    """Wall time of the request (both attempts when a retry was needed)."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the server already had cached (llama.cpp `timings.cache_n` or `prompt_tokens_details`)."""
    error: str = ""
    hung: bool = False
    """It timed out, and the endpoint did not answer a plain GET either: nothing is serving (see `answers_http`)."""


WARMUP_TIMEOUT_S = 15.0
"""How long a warm-up waits at most: on a slow CPU a long prefix takes longer, and then the first call waits for it."""
PROBE_TIMEOUT_S = 3.0
_MAX_BODY = 4_000_000


def _opener(url: str) -> urllib.request.OpenerDirector:
    """A local server is never reached through $http_proxy."""
    return urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if is_loopback(url) else []))


def _post(url: str, body: dict[str, Any], api_key: str | None, timeout_s: float) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    deadline = time.monotonic() + timeout_s
    body = b""
    with _opener(url).open(request, timeout=timeout_s) as response:
        # The socket timeout bounds each read only: a server trickling bytes forever (keep-alive comments, an
        # endless page) must still end by the deadline.
        while piece := response.read1(65536):
            body += piece
            if time.monotonic() > deadline:
                raise TimeoutError
            if len(body) > _MAX_BODY:
                raise ValueError("the answer is too large for a completion")
    return json.loads(body or b"{}")


def answers_http(base_url: str, api_key: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether `GET {base_url}/models` gets any HTTP answer (whatever its status) within `timeout_s`. A server busy
    with a long prefill still answers it (llama.cpp and vLLM serve it on other threads, in milliseconds); a hung one
    (stopped, deadlocked, a black hole behind a proxy) does not. Tells a slow endpoint from a dead one."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    request = urllib.request.Request(base_url.rstrip("/") + "/models", headers=headers)
    try:
        with _opener(base_url).open(request, timeout=timeout_s) as response:
            response.read1(1)
        return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError, http.client.HTTPException):
        return False


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            detail = json.loads(exc.read() or b"{}").get("error", {})
            message = detail.get("message", "") if isinstance(detail, dict) else str(detail)
        except (ValueError, OSError):
            message = ""
        return f"HTTP {exc.code}" + (f": {message.splitlines()[0][:200]}" if message else "")
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def warmup_request(
    base_url: str,
    model: str,
    *,
    api_key: str | None,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    timeout_s: float,
    extra_body: dict[str, Any] | None = None,
) -> WarmupResult:
    """Send one non-streaming chat completion with `max_tokens: 1` to `base_url` (ending in /v1).

    A server whose chat template insists on a user turn (Qwen3's does) rejects a system-only conversation; then the
    request is retried once with an empty user message appended — the cached system + tools prefix is the same.
    """
    started = time.perf_counter()
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 1, "stream": False}
    if tools:
        body["tools"] = tools
        body["tool_choice"] = "auto"
    body.update(extra_body or {})
    url = base_url.rstrip("/") + "/chat/completions"
    error = ""
    for attempt in range(2):
        try:
            payload = _post(url, body, api_key, timeout_s)
        except urllib.error.HTTPError as exc:
            error = _describe(exc)
            ends_with_user = bool(messages) and messages[-1].get("role") == "user"
            if attempt == 0 and exc.code in (400, 500) and not ends_with_user:
                body["messages"] = [*messages, {"role": "user", "content": ""}]
                continue
            break
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
        ) as exc:  # URLError, timeouts, resets, not JSON, not HTTP
            error = _describe(exc)
            break
        payload = payload if isinstance(payload, dict) else {}
        counts = merge_token_counts(TokenCounts(), payload.get("usage"), payload)
        return WarmupResult(True, _ms(started), counts.prompt, counts.cached)
    return WarmupResult(False, _ms(started), error=error)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
