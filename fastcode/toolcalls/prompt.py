"""The system prompt, with the tool list written into it when a mode sends no `tools` field."""

from __future__ import annotations

from typing import Any

from fastcode.core.prompts import render
from fastcode.toolcalls.describe import describe_tools


def system_prompt(tools: list[dict[str, Any]], describe: bool) -> str:
    return render("system", tools_text=describe_tools(tools) if describe else "")


def agent_prefix(tool_mode: str = "constrained") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages and `tools` every fastcode call in `tool_mode` starts with (a local server's default mode is
    constrained: the system prompt describes the tools and the request carries none)."""
    from fastcode.toolcalls.modes import resolve_mode
    from fastcode.tools import tool_schemas

    mode, tools = resolve_mode(tool_mode, "llamacpp"), tool_schemas()
    return [{"role": "system", "content": system_prompt(tools, mode.tools_in_prompt)}], mode.request(tools)[0]
