"""The fastcode app: task input, streaming transcript, live latency waterfall, status line.

Messages up, attributes down: the engine's events arrive as `EngineEvent` messages (see bridge.py); `apply` hands
each one to the transcript, the status line and a `TraceBuilder` the latency panel draws from. The same `apply`
rebuilds a recorded run for replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.events import Key
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, TextArea
from textual.worker import Worker, WorkerState

from fastcode.agent.engine import Session
from fastcode.core.events import ApprovalRequested, Event, RunFinished, RunStarted, TextDelta
from fastcode.core.trace import TraceBuilder
from fastcode.frontends.tui.approval import ApprovalScreen
from fastcode.frontends.tui.bridge import Bridge, EngineEvent
from fastcode.frontends.tui.latency import LatencyPanel
from fastcode.frontends.tui.status import StatusLine, route_labels, short_sandbox
from fastcode.frontends.tui.transcript import Transcript

PLACEHOLDER = "What should fastcode do?  Enter runs · Ctrl+J new line"
SHORT_SCREEN = 36
"""Below this many rows the open trace panel takes the whole main area instead of sharing it."""


class TaskInput(TextArea):
    """Multi-line input: Enter submits, Shift+Enter or Ctrl+J inserts a newline."""

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    async def _on_key(self, event: Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self.text.strip()))
            return
        if event.key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)


class FastcodeApp(App[int]):
    """The app on a live `session` (a task may start at once), or on recorded `events` with `replay=True`."""

    CSS_PATH = Path(__file__).with_name("fastcode.tcss")
    TITLE = "fastcode"
    BINDINGS: ClassVar = [
        Binding("ctrl+c", "interrupt", "interrupt", priority=True),
        Binding("ctrl+t", "toggle_trace", "trace", priority=True),
        Binding("escape", "close_panels", "close", show=False),
        Binding("ctrl+q", "quit", "quit", priority=True),
    ]

    def __init__(
        self,
        session: Session | None = None,
        *,
        task: str | None = None,
        events: Iterable[Event] = (),
        replay: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        self.session, self.initial_task, self.replay, self.clock = session, task, replay, clock
        self.initial_events = list(events)
        self.bridge = Bridge(self.post_message)
        self.trace = TraceBuilder()
        self.running = False
        if session is not None and session.approver is None:
            session.approver = self.bridge.approve

    def compose(self) -> ComposeResult:
        settings = self.session.settings if self.session else None
        routes = route_labels(settings) if settings else {}
        approval = settings.agent.approval if settings else ""
        self.transcript = Transcript(id="transcript")
        self.latency = LatencyPanel(now=self._now, id="latency")
        self.task_input = TaskInput(id="task-input", placeholder=PLACEHOLDER)
        self.task_input.display = not self.replay
        self.task_input.cursor_blink = not self.is_headless  # a steady cursor keeps snapshots stable
        sandbox = short_sandbox(self.session.sandbox.describe()) if self.session else ""
        self.status = StatusLine(routes, approval, self.clock, replay=self.replay, sandbox=sandbox)
        yield from (self.transcript, self.latency, self.task_input, self.status, Footer())

    async def on_mount(self) -> None:
        self.set_interval(0.25, self._tick)
        self._fit(self.size.height)
        for event in self.initial_events:
            await self.apply(event)
        if self.replay:
            self.set_class(True, "-trace")
            self.latency.redraw()
            self.transcript.focus()
        else:
            if not self.initial_events and not self.initial_task:
                await self.transcript.welcome()
            self.task_input.focus()
        if self.initial_task:
            self.start(self.initial_task)

    # the engine

    def start(self, task: str) -> None:
        """Run `task` in the session (a follow-up turn after the first)."""
        if self.session is None:
            self.notify("no model endpoint: this app only replays a trace", severity="warning")
            return
        self.running = True
        self.transcript.focus()
        self.run_worker(self.bridge.drive(self.session, task), name="engine", group="engine", exit_on_error=False)

    @on(TaskInput.Submitted)
    def _submitted(self, message: TaskInput.Submitted) -> None:
        if self.running:
            self.notify("a run is in progress: wait for it, or Ctrl+C to interrupt it", severity="warning")
            return
        self.task_input.clear()
        self.start(message.text)

    async def on_engine_event(self, message: EngineEvent) -> None:
        self.bridge.taken(message)
        await self.apply(message.event)

    async def apply(self, event: Event) -> None:
        """Fold one engine event into every part of the screen."""
        if isinstance(event, RunStarted):
            self.trace = TraceBuilder()
            self.latency.builder = self.trace
        self.trace.add(event)
        self.status.apply(event)
        await self.transcript.apply(event)
        if isinstance(event, ApprovalRequested) and self.bridge.waiting(event.tool_id):
            root = self.session.root if self.session else None
            answer = self.bridge.answer
            self.push_screen(ApprovalScreen(event, root), lambda ok, tid=event.tool_id: answer(tid, bool(ok)))
        if isinstance(event, RunFinished):
            self._run_over()
        if not isinstance(event, TextDelta):
            self.latency.redraw()

    def _run_over(self) -> None:
        self.running = False
        if isinstance(self.screen, ApprovalScreen):
            self.screen.dismiss(False)
        if not self.replay:
            self.task_input.focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "engine" or event.state not in (WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if event.state == WorkerState.ERROR:
            self.notify(f"the run failed: {event.worker.error}", severity="error", timeout=10)
        self._run_over()

    def _now(self) -> float | None:
        """Seconds since the run started, for bars still open (None when nothing is live)."""
        if self.replay or self.trace.origin is None or self.trace.finished is not None:
            return None
        return self.clock() - self.trace.origin

    def _tick(self) -> None:
        if self.status.state == "interrupting" and self.running and self.session is not None:
            # A cancel landing while httpx/anyio shields a send can be swallowed; the engine ignores repeats
            # while a run is really closing, so asking again until it ends is safe.
            self.session.interrupt()
        if self.status.state in ("running", "awaiting approval", "interrupting"):
            self.status.redraw()
            self.latency.redraw()

    # keys and layout

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.replay and action == "interrupt")

    def action_interrupt(self) -> None:
        if self.running and self.session is not None:
            self.session.interrupt()
            self.status.interrupting()
        else:
            self.notify("nothing to interrupt · Ctrl+Q quits", timeout=3)

    def action_toggle_trace(self) -> None:
        self.toggle_class("-trace")
        self.latency.redraw()

    def action_close_panels(self) -> None:
        self.set_class(False, "-trace")

    def on_key(self, event: Key) -> None:
        """With focus outside the input (as during a run), `t` toggles the trace and other typing goes to the input.
        Keys typed in a burst may still reach us after focus moved: they go to the input as well."""
        if self.replay or isinstance(self.screen, ModalScreen):  # (the input itself never lets typed keys out)
            return
        if not (event.key == "ctrl+j" or (event.is_printable and event.character)):
            return
        event.stop()
        if event.character == "t" and self.focused is not self.task_input:
            self.action_toggle_trace()
            return
        self.screen.set_focus(self.task_input)  # at once: the next key must land in the input too
        self.task_input.insert("\n" if event.key == "ctrl+j" else event.character or "")

    def on_resize(self, event) -> None:  # type: ignore[no-untyped-def]
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        self.set_class(height < SHORT_SCREEN, "-short")
