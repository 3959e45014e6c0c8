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

from fastcode.core.emitter import Emitter
from fastcode.core.events import ApprovalRequested, ToolCallSpec, ToolFinished, ToolStarted
from fastcode.core.safe_text import clean
from fastcode.core.secrets import mask
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
        self.early: EarlyStarts | None = None
        """The current turn's reads started while the model was still writing."""

    async def run_turn(
        self, calls: list[ToolCallSpec], step: int, early: EarlyStarts | None = None
    ) -> list[CallOutcome]:
        """Execute every call of the turn (finish last), returning outcomes in the order the model gave. Reads that
        `early` started while the model was still writing are awaited, not run again."""
        reads = [c for c in calls if is_read_only(c)] if self.parallel else []
        rest = [c for c in calls if c not in reads]
        done: dict[str, CallOutcome] = {}
        started = [(early.take(c) if early else None) or self._one(c, step) for c in reads]
        for outcome in await asyncio.gather(*started):
            done[outcome.call.id] = outcome
        if early:
            await early.settle()
        for call in rest:
            done[call.id] = await self._one(call, step)
        return [done[c.id] for c in calls]

    async def finish(self, call: ToolCallSpec, step: int, declined: str) -> CallOutcome:
        """Run a `finish` call after the turn's edits and tests; `declined` (why the tests say no) refuses it."""
        return self.ignored(call, step, declined) if declined else await self._one(call, step)

    def ignored(self, call: ToolCallSpec, step: int, why: str) -> CallOutcome:
        """A call that is answered without running (a second finish in one reply)."""
        self.emit(ToolStarted, tool_id=call.id, step=step, name=call.name, arguments=_arguments(call))
        self.emit(ToolFinished, tool_id=call.id, step=step, name=call.name, ok=False, output=why, ms=0.0)
        return CallOutcome(call, False, why, [])

    async def _one(self, call: ToolCallSpec, step: int) -> CallOutcome:
        arguments = _arguments(call)
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
        output = clean(mask(output))
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


def _arguments(call: ToolCallSpec) -> dict | str:
    """The call's arguments as an object for events, or the raw text when it is not a JSON object."""
    try:
        value = json.loads(call.arguments or "{}")
    except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nesting too deep
        return call.arguments
    return value if isinstance(value, dict) else call.arguments


EARLY_PARSE_CHARS = 32_000


class EarlyStarts:
    """Read-only calls started while the model is still writing: a call whose arguments are complete in the stream
    runs at once; writes and commands still wait for the whole message. The trace shows the overlap (a ToolStarted
    before its ModelCallFinished)."""

    def __init__(self, executor: ToolExecutor, step: int) -> None:
        self.executor, self.step = executor, step
        self.tasks: dict[str, tuple[ToolCallSpec, asyncio.Task[CallOutcome]]] = {}
        self.content = ""

    def ready(self, call: ToolCallSpec) -> None:
        """A call is complete in the stream: start it now when it only reads."""
        if self.executor.parallel and is_read_only(call) and call.id not in self.tasks:
            self.tasks[call.id] = (call, asyncio.ensure_future(self.executor._one(call, self.step)))

    def text(self, delta: str, parse: Callable[[str], list[ToolCallSpec]]) -> None:
        """Content streamed by a mode that writes its calls in the content: start the calls complete so far. Each
        parse reads the whole reply, so past `EARLY_PARSE_CHARS` (no real reply is that long) it waits for the end:
        a huge reply must not cost quadratic time."""
        if len(self.content) > EARLY_PARSE_CHARS:
            return
        self.content += delta
        if "}" in delta:
            for call in parse(self.content):
                self.ready(call)

    def take(self, call: ToolCallSpec) -> asyncio.Task[CallOutcome] | None:
        """The early run of exactly this call, if there is one."""
        entry = self.tasks.get(call.id)
        if entry is None or entry[0] != call:
            return None
        del self.tasks[call.id]
        return entry[1]

    def cancel(self) -> None:
        """The reply failed or was interrupted: stop the reads it started."""
        for _, task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    async def settle(self) -> None:
        """Let early runs the final message did not keep (read-only, so harmless) finish, so none is left behind."""
        await asyncio.gather(*(task for _, task in self.tasks.values()), return_exceptions=True)
        self.tasks.clear()
