"""The finish tool: the model's way to end the task; the engine stops when it is called."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from fastcode.tools.base import ToolArgs, ToolContext, ToolResult, register


class FinishArgs(ToolArgs):
    summary: str = Field(description="What was done (files changed, tests run) or why the task cannot be done.")


@register
class Finish:
    name: ClassVar[str] = "finish"
    description: ClassVar[str] = "Call when the task is complete (or cannot be completed), with a short summary."
    Args: ClassVar[type[ToolArgs]] = FinishArgs
    read_only: ClassVar[bool] = False

    async def run(self, args: FinishArgs, ctx: ToolContext) -> ToolResult:
        return ToolResult(output=args.summary)
