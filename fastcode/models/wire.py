"""What OpenAI-compatible servers report, read one way everywhere: token counts from `usage` (OpenAI, vLLM),
llama.cpp's `timings` and Groq's `x_groq.usage`, the server's own prefill time (llama.cpp `timings.prompt_ms`, vLLM's
`metrics.time_to_first_token_ms`); and whether an endpoint lives on this machine.

Standard library only: the fast-start path and the warm-up use it before pydantic or openai are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(url: str) -> bool:
    """True for an endpoint on this machine (a local llama-server, vLLM, or the scripted server)."""
    return (urlparse(url).hostname or "") in LOOPBACK_HOSTS


@dataclass(frozen=True)
class TokenCounts:
    prompt: int = 0
    cached: int = 0
    completion: int = 0
    prefill_ms: float = 0.0
    """The server's own time on the prompt, where it says (llama.cpp `timings.prompt_ms`, vLLM
    `metrics.time_to_first_token_ms`); 0 when it does not."""


def _count(value: Any) -> int:
    """A token count as a server may send it (an int, a float, a numeric string); anything else, NaN or negative: 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value == value and 0 <= value < 1e15:
        return int(value)
    return value if isinstance(value, int) and 0 <= value < 10**15 else 0


def _usage_counts(usage: Any) -> tuple[int, int, int]:
    """(prompt, cached, completion) from an OpenAI-style usage object; zeros for what is missing or malformed."""
    if not isinstance(usage, dict):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return _count(usage.get("prompt_tokens")), cached, _count(usage.get("completion_tokens"))


def merge_token_counts(counts: TokenCounts, usage: dict[str, Any] | None, extra: dict[str, Any]) -> TokenCounts:
    """Fold one response (or stream chunk) into the counts so far: its `usage` dict and its extra top-level fields.
    Values of the wrong type are ignored: a server's odd usage block never ends a run."""
    prompt, cached, completion = counts.prompt, counts.cached, counts.completion
    for source in (usage, (extra.get("x_groq") or {}).get("usage") if isinstance(extra.get("x_groq"), dict) else None):
        p, c, n = _usage_counts(source)
        prompt, cached, completion = p or prompt, c or cached, n or completion
    timings, prefill_ms = extra.get("timings"), counts.prefill_ms
    if isinstance(timings, dict):  # llama.cpp
        cache_n, prompt_n = _count(timings.get("cache_n")), _count(timings.get("prompt_n"))
        cached, prompt = max(cached, cache_n), max(prompt, cache_n + prompt_n)
        completion = max(completion, _count(timings.get("predicted_n")))
        prefill_ms = _ms(timings.get("prompt_ms"), prefill_ms)
    metrics = extra.get("metrics")
    if isinstance(metrics, dict):  # vLLM --enable-per-request-metrics: from scheduling to the first token
        prefill_ms = _ms(metrics.get("time_to_first_token_ms"), prefill_ms)
    return TokenCounts(prompt, cached, completion, prefill_ms)


def _ms(value: Any, otherwise: float) -> float:
    """A duration in milliseconds as a server sent it; `otherwise` for null, NaN, negative, absurd or not a number."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number and 0 <= value < 1e9 else otherwise  # NaN fails both comparisons
