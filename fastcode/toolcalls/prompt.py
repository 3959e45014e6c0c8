"""The system prompt, with the tool list written into it when a mode sends no `tools` field."""

from __future__ import annotations

from typing import Any

from fastcode.prompts import render
from fastcode.toolcalls.describe import describe_tools


def system_prompt(tools: list[dict[str, Any]], describe: bool) -> str:
    return render("system", tools_text=describe_tools(tools) if describe else "")
