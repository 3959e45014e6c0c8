"""Runs one assistant turn's tool calls: reads at once, writes and commands after them in order, results in order.

Approval (the TUI's suggest / auto-edit modes) is awaited here through a callback, so the engine never imports a
front end.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastcode.emitter import Emitter
from fastcode.events import ApprovalRequested, ToolCallSpec, ToolFinished, ToolStarted
from fastcode.tools import REGISTRY, execute
from fastcode.tools.base import ToolContext, ToolError, parse_arguments

Approver = Callable[[ApprovalRequested], Awaitable[bool]]
NEEDS_APPROVAL = {"suggest": {"run", "edit_file", "write_file"}, "auto-edit": {"run"}, "full-auto": set()}


@dataclass
class CallOutcome:
    call: ToolCallSpec
    ok: bool
    output: str
    changed_files: list[str]
    invalid: bool = False
    """The call itself was malformed (unknown tool, bad JSON, missing field): counts toward escalation."""


def is_read_only(call: ToolCallSpec) -> bool:
    cls = REGISTRY.get(call.name)
    return bool(cls is not None and cls.read_only)


class ToolExecutor:
    def __init__(
        self,
        ctx: ToolContext,
        emit: Emitter,
        *,
        parallel: bool = True,
        approval: str = "full-auto",
        approver: Approver | None = None,
    ) -> None:
        self.ctx, self.emit, self.parallel = ctx, emit, parallel
        self.ask_for = NEEDS_APPROVAL[approval] if approver else set()
        self.approver = approver

    async def run_turn(self, calls: list[ToolCallSpec], step: int) -> list[CallOutcome]:
        """Execute every call of the turn (finish last), returning outcomes in the order the model gave."""
        reads = [c for c in calls if is_read_only(c)] if self.parallel else []
        rest = [c for c in calls if c not in reads]
        rest.sort(key=lambda c: c.name == "finish")
        done: dict[str, CallOutcome] = {}
        for outcome in await asyncio.gather(*(self._one(c, step) for c in reads)):
            done[outcome.call.id] = outcome
        for call in rest:
            done[call.id] = await self._one(call, step)
        return [done[c.id] for c in calls]

    async def _one(self, call: ToolCallSpec, step: int) -> CallOutcome:
        try:
            arguments: dict | str = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            arguments = call.arguments
        self.emit(ToolStarted, tool_id=call.id, step=step, name=call.name, arguments=arguments)
        started = time.perf_counter()
        ok, changed, invalid = True, [], False
        try:
            try:
                parse_arguments(call.name, call.arguments)
            except ToolError:
                invalid = True
                raise
            if call.name in self.ask_for and isinstance(arguments, dict) and not await self._approved(call, arguments):
                raise ToolError("the user declined this call; try another way or ask in your summary")
            result = await execute(call.name, call.arguments, self.ctx)
            output, changed = result.output, result.changed_files
        except ToolError as exc:
            ok, output = False, f"error: {exc}"
        ms = round((time.perf_counter() - started) * 1000, 2)
        self.emit(
            ToolFinished,
            tool_id=call.id,
            step=step,
            name=call.name,
            ok=ok,
            output=output,
            ms=ms,
            changed_files=changed,
        )
        return CallOutcome(call, ok, output, changed, invalid)

    async def _approved(self, call: ToolCallSpec, arguments: dict) -> bool:
        preview = arguments.get("command") or arguments.get("new") or arguments.get("content") or ""
        request = self.emit(
            ApprovalRequested,
            tool_id=call.id,
            name=call.name,
            arguments=arguments,
            preview=str(preview)[:4000],
        )
        assert self.approver is not None
        return await self.approver(request)
