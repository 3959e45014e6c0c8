"""Cache warming: while context is gathered, each distinct (endpoint, model) of the routes gets one request with
the exact system prompt + tools and `max_tokens: 1`, so the first real call reads a warm prefix.

`agent.warmup`: "always", "never", or "auto" (local servers only: a paid endpoint bills the warm-up). A warm-up that
`fastcode.models.faststart` already sent at process start is awaited instead of sent again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastcode.core.config import ModelProfile, Settings
from fastcode.core.events import ModelCallFinished, ModelCallStarted
from fastcode.models import faststart
from fastcode.models.client import api_key, cache_hints, provider_name, server_kind
from fastcode.models.warmup_request import WARMUP_TIMEOUT_S, WarmupResult, answers_http, warmup_request

if TYPE_CHECKING:
    from fastcode.core.emitter import Emitter

ROUTED_KINDS = ("plan", "act", "edit", "verify", "summarize", "escalate")


def is_local(profile: ModelProfile) -> bool:
    """A self-hosted server (llama.cpp, vLLM; auto: a loopback address), where a warm-up costs nothing."""
    return server_kind(profile) in ("llamacpp", "vllm")


def warm_targets(settings: Settings) -> list[tuple[str, ModelProfile]]:
    """Distinct (endpoint, model) pairs of the configured routes that the warm-up policy allows."""
    policy = settings.agent.warmup
    seen: dict[str, tuple[str, ModelProfile]] = {}
    for kind in ROUTED_KINDS:
        name, profile = settings.profile(kind)
        if policy == "never" or (policy == "auto" and not is_local(profile)):
            continue
        seen.setdefault(faststart.target_key(profile.base_url, profile.model), (name, profile))
    return list(seen.values())


async def warm_up(
    settings: Settings,
    emit: Emitter,
    messages: list[dict[str, Any]],
    tools_for: Callable[[ModelProfile], list[dict[str, Any]]],
    cache_key: str,
) -> list[WarmupResult]:
    """Warm every target at once (each with the `tools` its requests carry); failures are reported in the trace and
    otherwise ignored. A warm-up that times out asks the endpoint for `/models`: no answer marks it hung."""

    async def one(index: int, name: str, profile: ModelProfile) -> WarmupResult:
        tools = tools_for(profile)
        call_id = f"warmup.{index}"
        common = dict(call_id=call_id, step=0, route="warmup", profile=name, model=profile.model, warmup=True)
        emit(ModelCallStarted, **common, base_url=profile.base_url, provider=provider_name(profile))
        early = faststart.take(faststart.target_key(profile.base_url, profile.model), messages, tools)
        if early is not None:
            result = await asyncio.wrap_future(early)
        else:
            result = await asyncio.to_thread(
                warmup_request,
                profile.base_url,
                profile.model,
                api_key=api_key(profile),
                messages=messages,
                tools=tools,
                timeout_s=min(WARMUP_TIMEOUT_S, profile.first_token_timeout_s),
                extra_body=cache_hints(profile, cache_key),
            )
        if not result.ok and result.error == "timed out":
            alive = await asyncio.to_thread(answers_http, profile.base_url, api_key(profile))
            result = dataclasses.replace(result, error="timed out" if alive else "timed out; hung", hung=not alive)
        emit(
            ModelCallFinished,
            **common,
            prompt_tokens=result.prompt_tokens,
            cached_tokens=result.cached_tokens,
            total_ms=result.ms,
            content="" if result.ok else f"warm-up failed: {result.error}",
        )
        return result

    targets = warm_targets(settings)
    return list(await asyncio.gather(*(one(i, name, p) for i, (name, p) in enumerate(targets, 1))))
