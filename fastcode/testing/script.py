"""The script format of the scripted server: what the fake model answers, and how slowly.

`Script` (turns in order, optional per-model turns, strict model names, a required API key), `Turn` (content,
reasoning, tool calls or an HTTP error), `ScriptedToolCall`, `ScriptedError` and the `Latency` model. Every model
rejects unknown keys, so a typo in a script fails loudly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Latency(BaseModel):
    """How slow the fake model is. The defaults answer at once, so unit tests stay fast."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = 0.0
    """Fixed delay before the first content or tool chunk, in milliseconds (prefill comes on top)."""
    prefill_tps: float = 1e9
    """Prompt tokens processed per second; each uncached prompt token costs 1/prefill_tps seconds."""
    decode_tps: float = 1e9
    """Completion tokens generated per second, spread over the streamed chunks."""
    cached_prefill_factor: float = 0.0
    """Cost of a cached prompt token relative to an uncached one (0 = free, 1 = no cache benefit)."""
    batch_parallel: float = 1.0
    """How many choices of one request (`n`) decode at the speed of one: 1 models a CPU (n answers cost n times
    one), n a GPU server (a batch costs about one answer)."""
    cache_completions: bool = False
    """Also cache each answer's own tokens, as self-hosted servers (llama.cpp, vLLM) keep them in the KV cache:
    the next request re-sending that assistant message finds it cached. False models a prompt-only cache."""


class ScriptedToolCall(BaseModel):
    """One tool call the fake model makes."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Function name."""
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    """An object (sent as `json.dumps`) or a raw string sent verbatim (e.g. invalid JSON)."""

    def arguments_text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class ScriptedError(BaseModel):
    """An HTTP error answer instead of a completion."""

    model_config = ConfigDict(extra="forbid")

    status: int = 500
    """HTTP status code."""
    message: str = "scripted error"
    """`error.message` in the body."""
    type: str | None = None
    """`error.type`; derived from the status when omitted."""
    code: str | None = None
    """`error.code`."""


class Turn(BaseModel):
    """One scripted answer, consumed by one real (non-warm-up) request."""

    model_config = ConfigDict(extra="forbid")

    content: str = ""
    """Assistant text."""
    reasoning: str = ""
    """Reasoning text, sent as `reasoning_content` (llama.cpp / DeepSeek style) before the content."""
    tool_calls: list[ScriptedToolCall] = []
    """Tool calls, after the content."""
    error: ScriptedError | None = None
    """When set, answer with this HTTP error instead."""
    model: str | None = None
    """Only a request for this model name consumes the turn; None matches any request."""
    finish_reason: str | None = None
    """Override; default "tool_calls" when there are tool calls, else "stop"."""
    text_format: Literal["json", "fenced", "tool_call", "tools", "bare"] | None = None
    """Write the tool calls as text in the content instead of through tool calling, as small models do: "json" is
    fastcode's constrained reply shape, the others fenced JSON, `<tool_call>` or `<tools>` tags, or bare JSON. A
    request carrying a JSON-schema `response_format` always gets the "json" shape."""

    def as_text(self, text_format: str) -> Turn:
        """This turn with its tool calls written into the content."""
        calls = [{"name": c.name, "arguments": c.arguments} for c in self.tool_calls]
        if text_format == "json":
            content = json.dumps({"thought": self.content, "tool_calls": calls})
        else:
            wrap = {
                "fenced": "```json\n{}\n```",
                "tool_call": "<tool_call>\n{}\n</tool_call>",
                "tools": "<tools>{}</tools>",
                "bare": "{}",
            }[text_format]
            content = "\n".join([self.content, *(wrap.format(json.dumps(call)) for call in calls)]).strip()
        return self.model_copy(update={"content": content, "tool_calls": [], "text_format": None})


class Script(BaseModel):
    """What the fake model says, in order."""

    model_config = ConfigDict(extra="forbid")

    model: str = "scripted-model"
    """Model name listed on /v1/models (per-turn model names are listed too)."""
    latency: Latency = Field(default_factory=Latency)
    """The latency model; the server's `latency=` argument overrides it."""
    turns: list[Turn] = []
    """Answers, consumed in order by matching requests."""
    strict_models: bool = False
    """Answer 404 model_not_found to requests for models not listed."""
    supports_n: bool = False
    """Answer a request for `n` > 1 choices with up to n turns (the next ones in order), one per choice; False
    ignores `n` as many servers do (one choice)."""
    require_api_key: str | None = None
    """When set, requests without `Authorization: Bearer <key>` get 401."""

    @classmethod
    def load(cls, source: Script | dict[str, Any] | str | Path) -> Script:
        """A script from a model, a dict, JSON text, a JSON file, or a directory holding `script.json`."""
        if isinstance(source, Script):
            return source
        if isinstance(source, dict):
            return cls.model_validate(source)
        if isinstance(source, str) and source.lstrip().startswith("{"):
            return cls.model_validate_json(source)
        path = Path(source)
        if path.is_dir():
            path = path / "script.json"
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def model_names(self) -> list[str]:
        return list(dict.fromkeys([self.model, *(t.model for t in self.turns if t.model)]))
