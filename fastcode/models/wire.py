"""What OpenAI-compatible servers report, read one way everywhere: token counts from `usage` (OpenAI, vLLM),
llama.cpp's `timings` and Groq's `x_groq.usage`; and whether an endpoint lives on this machine.

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


def merge_token_counts(counts: TokenCounts, usage: dict[str, Any] | None, extra: dict[str, Any]) -> TokenCounts:
    """Fold one response (or stream chunk) into the counts so far: its `usage` dict and its extra top-level fields."""
    prompt, cached, completion = counts.prompt, counts.cached, counts.completion
    if usage:
        prompt = usage.get("prompt_tokens") or prompt
        completion = usage.get("completion_tokens") or completion
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or cached
    timings = extra.get("timings")
    if isinstance(timings, dict):  # llama.cpp
        cache_n, prompt_n = int(timings.get("cache_n") or 0), int(timings.get("prompt_n") or 0)
        cached, prompt = max(cached, cache_n), max(prompt, cache_n + prompt_n)
        completion = max(completion, int(timings.get("predicted_n") or 0))
    groq = extra.get("x_groq")
    if isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
        usage = groq["usage"]
        prompt = usage.get("prompt_tokens") or prompt
        completion = usage.get("completion_tokens") or completion
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or cached
    return TokenCounts(int(prompt), int(cached), int(completion))
