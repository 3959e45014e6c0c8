"""The engine-in-a-worker bridge: engine events cross into the UI as one Message type, text deltas merged.

The engine runs on the app's event loop inside a Textual worker. Every event it yields is posted to the app as an
`EngineEvent`. Streamed text comes far faster than a Markdown widget can re-render, so consecutive `TextDelta`s of
the same call are folded into the message still waiting in the app's queue: however fast the model decodes, the UI
handles at most one text message per repaint and never falls behind the stream.

Approvals: the engine awaits `Bridge.approve` (the session's approver); it parks an asyncio Future under the tool id.
The `ApprovalRequested` event reaches the UI through the same stream, the UI opens its modal, and the modal's answer
resolves the Future. Only the awaiting tool call waits; the UI and the rest of the loop keep running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from textual.message import Message

from fastcode.agent.engine import Session
from fastcode.core.events import ApprovalRequested, Event, TextDelta


class EngineEvent(Message):
    """One engine event (a `TextDelta` may hold the merged text of several)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event
        self.merged = 1
        """How many engine events this message stands for."""


def _mergeable(pending: EngineEvent | None, event: Event) -> bool:
    return (
        pending is not None
        and isinstance(event, TextDelta)
        and isinstance(pending.event, TextDelta)
        and pending.event.call_id == event.call_id
        and pending.event.kind == event.kind
    )


def merge_text(first: TextDelta, second: TextDelta) -> TextDelta:
    """One delta holding both texts; it keeps the later sequence number and time."""
    return first.model_copy(update={"text": first.text + second.text, "seq": second.seq, "t": second.t})


def merge_deltas(events: Iterable[Event]) -> list[Event]:
    """Fold runs of TextDeltas of the same call into one (replay uses this to rebuild a transcript quickly)."""
    out: list[Event] = []
    for event in events:
        previous = out[-1] if out else None
        if (
            isinstance(event, TextDelta)
            and isinstance(previous, TextDelta)
            and (previous.call_id, previous.kind) == (event.call_id, event.kind)
        ):
            out[-1] = merge_text(previous, event)
        else:
            out.append(event)
    return out


class Bridge:
    """Forwards a session's events to `post` (the app's `post_message`) and answers its approval requests."""

    def __init__(self, post: Callable[[Message], object]) -> None:
        self.post = post
        self._pending: EngineEvent | None = None
        self._answers: dict[str, asyncio.Future[bool]] = {}

    def forward(self, event: Event) -> None:
        """Post one event, merging it into the waiting text message when it continues it."""
        if _mergeable(self._pending, event):
            assert self._pending is not None
            self._pending.event = merge_text(self._pending.event, event)  # type: ignore[arg-type]
            self._pending.merged += 1
            return
        message = EngineEvent(event)
        self._pending = message if isinstance(event, TextDelta) else None
        self.post(message)

    def taken(self, message: EngineEvent) -> None:
        """The UI started handling `message`: later deltas must go into a new one."""
        if self._pending is message:
            self._pending = None

    async def drive(self, session: Session, task: str) -> None:
        """The worker body: run one task, forwarding every event."""
        async for event in session.run(task):
            self.forward(event)

    # approvals

    async def approve(self, request: ApprovalRequested) -> bool:
        """The session's approver: wait until the UI answers for this tool call."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._answers[request.tool_id] = future
        try:
            return await future
        finally:
            self._answers.pop(request.tool_id, None)

    def waiting(self, tool_id: str) -> bool:
        future = self._answers.get(tool_id)
        return future is not None and not future.done()

    def answer(self, tool_id: str, approved: bool) -> None:
        future = self._answers.get(tool_id)
        if future is not None and not future.done():
            future.set_result(approved)
