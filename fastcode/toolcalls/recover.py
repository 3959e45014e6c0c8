"""Tool calls a model wrote as text, recovered: our JSON reply shape, fenced JSON, `<tool_call>…</tool_call>`,
`<tools>…</tools>`, an OpenAI-style `{"type": "function", "function": {...}}`, or a bare JSON object naming a tool.

Small models often answer a tool call as text instead of through the endpoint's tool-calling channel; a fix they
wrote that way is still a fix. Every JSON value in the text is tried; what names a tool becomes a call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastcode.core.events import ToolCallSpec

_DECODER = json.JSONDecoder()
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TAGS = (("<tool_call>", "</tool_call>", "tool_call tag"), ("<tools>", "</tools>", "tools tag"))
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")
MAX_ATTEMPTS = 200
"""JSON parses tried per reply: hostile output ("[[[[…") must not cost quadratic time."""


@dataclass
class Recovered:
    calls: list[ToolCallSpec] = field(default_factory=list)
    text: str = ""
    """The prose around the calls (the model's thought), for the transcript."""
    how: str = ""
    """Where the calls were found: "json reply", "fenced json", "tool_call tag", "tools tag" or "bare json"."""


def _json_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """Every top-level JSON object or array in `text`, with its span."""
    at, attempts = 0, 0
    while attempts < MAX_ATTEMPTS:
        attempts += 1
        starts = [i for i in (text.find("{", at), text.find("[", at)) if i != -1]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nesting too deep
            at = start + 1
            continue
        if isinstance(value, dict | list):
            yield start, end, value
        at = end


def _arguments(value: Any) -> str | None:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str):
        try:
            return value if isinstance(json.loads(value), dict) else None
        except (ValueError, RecursionError):
            return None
    return None


def _calls_in(value: Any, known: set[str], depth: int = 0) -> list[tuple[str, str]]:
    """(name, arguments JSON) pairs found in one parsed value."""
    if depth > 4:
        return []
    if isinstance(value, list):
        return [c for item in value for c in _calls_in(item, known, depth + 1)]
    if not isinstance(value, dict):
        return []
    for key in ("tool_calls", "calls", "tools"):
        if isinstance(value.get(key), list | dict):
            return _calls_in(value[key], known, depth + 1)
    function = value.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return _calls_in(function, known, depth + 1)
    name = value.get("name") or (function if isinstance(function, str) else None)
    if not isinstance(name, str) or not name:
        return []
    for key in _ARGUMENT_KEYS:
        if key in value:
            arguments = _arguments(value[key])
            return [(name, arguments)] if arguments is not None else [(name, str(value[key]))]
    if name in known:  # {"name": "finish", "summary": "..."}: the other keys are the arguments
        rest = {k: v for k, v in value.items() if k not in ("name", "function", "type", "id")}
        return [(name, json.dumps(rest))]
    return []


def _label(text: str, start: int) -> str:
    for fence in _FENCE.finditer(text):
        if fence.start(1) <= start < fence.end(1):
            return "fenced json"
    for opening, closing, label in _TAGS:
        before = text.rfind(opening, 0, start)
        if before != -1 and text.rfind(closing, before, start) == -1:
            return label
    return "bare json"


def recover_calls(text: str, known: set[str], *, id_prefix: str = "text") -> Recovered:
    """The tool calls written in `text`; an object must name a tool (known or not, with arguments) to count."""
    found: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    how = ""
    if not text or ("{" not in text and "[" not in text):
        return Recovered(text=text or "")
    for start, end, value in _json_values(text):
        calls = _calls_in(value, known)
        if not calls:
            continue
        found.extend(calls)
        spans.append((start, end))
        if not how:
            whole = start == len(text) - len(text.lstrip()) and end == len(text.rstrip())
            how = "json reply" if whole and isinstance(value, dict) and "tool_calls" in value else _label(text, start)
    prose = _prose(text, spans)
    if not found:
        return Recovered(text=text)
    specs = [ToolCallSpec(id=f"{id_prefix}_{i}", name=n, arguments=a) for i, (n, a) in enumerate(found)]
    return Recovered(calls=specs, text=prose, how=how)


def _prose(text: str, spans: list[tuple[int, int]]) -> str:
    """The text without the recovered JSON, fences and tags; for a JSON reply, its `thought`."""
    if len(spans) == 1 and spans[0][0] == len(text) - len(text.lstrip()):
        try:
            value = json.loads(text[spans[0][0] : spans[0][1]])
            if isinstance(value, dict) and isinstance(value.get("thought"), str):
                return value["thought"].strip()
        except json.JSONDecodeError:
            pass
    kept, at = [], 0
    for start, end in spans:
        kept.append(text[at:start])
        at = end
    kept.append(text[at:])
    prose = "".join(kept)
    prose = re.sub(r"```[a-zA-Z0-9_-]*\s*```", "", prose)
    for opening, closing, _ in _TAGS:
        prose = prose.replace(opening, "").replace(closing, "")
    return re.sub(r"\n{3,}", "\n\n", prose).strip()
