"""The agent's tools. Importing this package registers them; the engine uses `tool_schemas()` and `execute()`.

Tool modules import nothing heavy at import time (tree_sitter and ripgrepy load on first use). `symbols` (tree-sitter
definitions, tag queries in `queries/`) also serves the repo map.

May import: `fastcode.core`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastcode.tools import files, finish, outline, search, shell  # noqa: F401  (importing registers the tools)
from fastcode.tools.base import REGISTRY, ToolContext, ToolError, ToolResult, parse_arguments, tool_schema

__all__ = ["REGISTRY", "TOOL_ORDER", "ToolContext", "ToolError", "ToolResult", "execute", "tool_schemas"]

TOOL_ORDER = ("read_file", "search", "outline", "edit_file", "write_file", "run", "finish")
"""The order the model sees the tools in: fixed, so the prompt prefix stays cacheable."""


def tool_schemas() -> list[dict[str, Any]]:
    """The OpenAI `tools` list: the core tools in `TOOL_ORDER`, then any other registered tool by name."""
    extra = sorted(name for name in REGISTRY if name not in TOOL_ORDER)
    return [tool_schema(REGISTRY[name]) for name in (*TOOL_ORDER, *extra)]


async def execute(name: str, raw_arguments: str, ctx: ToolContext) -> ToolResult:
    """Run one tool call. Unknown tools, bad JSON, invalid arguments and any failure inside the tool (an OS error,
    a path the file system cannot encode, a symlink loop) raise ToolError: the model reads it, the run goes on."""
    cls, args = parse_arguments(name, raw_arguments)
    try:
        if getattr(cls, "blocking", False):  # file work: in a thread, so a big file never freezes the event loop
            return await asyncio.to_thread(_run_blocking, cls, args, ctx)
        return await cls().run(args, ctx)
    except ToolError:
        raise
    except OSError as exc:
        raise ToolError(f"{name} failed: {exc}") from exc
    except Exception as exc:  # whatever the model sent must not end the run
        raise ToolError(f"{name} failed: {type(exc).__name__}: {exc}") from exc


def _run_blocking(cls: type, args: Any, ctx: ToolContext) -> ToolResult:
    """Drive a blocking tool's `run` (a coroutine that never awaits) to its result, in the calling thread."""
    coroutine = cls().run(args, ctx)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError(f"{cls.name}.run awaited; a tool marked blocking must not")
