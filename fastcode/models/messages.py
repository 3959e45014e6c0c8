"""Chat messages as the engine appends them: built once, never rewritten, so every call re-sends the same bytes."""

from __future__ import annotations

import json
import re
from typing import Any

from fastcode.core.events import ToolCallSpec

_PLAN_LINE = re.compile(r"^\s*(\d+)[.)]\s+(.+?)\s*$")


def system(content: str) -> dict[str, Any]:
    return {"role": "system", "content": content}


def user(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content}


def tool(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def assistant(content: str, calls: list[ToolCallSpec]) -> dict[str, Any]:
    """The assistant turn for the history. Arguments that are not JSON are replaced by {} (servers that template
    tool calls reject them); the model still reads the error its call produced."""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name or "unknown", "arguments": _json_or_empty(call.arguments)},
            }
            for call in calls
        ]
    return message


def unanswered(messages: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """Tool results for the calls of the last assistant turn that got none (a run stopped mid-turn), so the
    conversation stays valid for a follow-up without rewriting anything already sent."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
    if last is None:
        return []
    answered = {m.get("tool_call_id") for m in messages[last + 1 :] if m["role"] == "tool"}
    return [tool(c["id"], f"error: {reason}") for c in messages[last].get("tool_calls", []) if c["id"] not in answered]


def _json_or_empty(raw: str) -> str:
    try:
        return raw if isinstance(json.loads(raw or "null"), dict) else "{}"
    except (ValueError, RecursionError):
        return "{}"


def plan_items(text: str) -> list[str]:
    """The numbered lines at the start of the first reply ("1. read the test" …), in order."""
    items = [m.group(2) for line in text.splitlines() if (m := _PLAN_LINE.match(line))]
    return items[:12]
